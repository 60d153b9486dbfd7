package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time by the Makefile:
//
//	go build -ldflags "-X main.version=v1.2.3"
//
// Without it, the module version or "dev" is shown.
var version = ""

func versionCommand() *command {
	return &command{
		Name:     "version",
		Synopsis: "",
		Summary:  "print the version of usersd and how it was built",
		Help:     "Prints the version of usersd, the Go version that built it and, when known, its source revision.",
		Setup: func(fs *flag.FlagSet, e *env) func(context.Context, []string) error {
			return func(_ context.Context, args []string) error {
				if len(args) > 0 {
					return usageErrorf("unexpected arguments %q: version takes none", args)
				}
				fmt.Fprintln(e.Stdout, versionString())
				return nil
			}
		},
	}
}

// versionString is e.g. "usersd v1.2.3 (go1.26.8 linux/amd64, revision 1a2b3c4d5e6f, modified)".
func versionString() string {
	v := version
	extra := []any{runtime.Version(), runtime.GOOS, runtime.GOARCH}
	format := "usersd %s (%s %s/%s"
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var revision, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if len(revision) > 12 {
			revision = revision[:12]
		}
		if revision != "" {
			format += ", revision %s"
			extra = append(extra, revision)
			if modified == "true" {
				format += ", modified"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	return fmt.Sprintf(format+")", append([]any{v}, extra...)...)
}
