package httpapi

import "github.com/gorilla/mux"

// Route is one route of the router: its path template and one method.
type Route struct{ Method, Path string }

// Routes lists every route and method the server answers, walking the
// router, for the authorisation matrix (authz_matrix_test.go).
func Routes(s *Server) []Route {
	var out []Route
	_ = s.router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := r.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := r.GetMethods()
		if err != nil {
			// A route for every method: the matrix must name it too.
			methods = []string{"*"}
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: path})
		}
		return nil
	})
	return out
}
