// Package positive has the rule of the settings for which zero, or less,
// means "the default": sizes, limits, timeouts, intervals. It imports the
// standard library only, so that every layer may use it
// (.ci/lint-imports.sh).
package positive

// Or answers v if it is above zero, or else def.
func Or[T ~int | ~int32 | ~int64 | ~float64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
