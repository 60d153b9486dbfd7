package main

import (
	"flag"
	"testing"
)

func TestSettingLookup(t *testing.T) {
	t.Parallel()
	s := setting{env: "USERSD_X", flag: "x", def: "d"}
	tests := []struct {
		name               string
		args               []string
		env                string
		wantValue, wantSrc string
	}{
		{name: "neither: the default", wantValue: "d", wantSrc: "default"},
		{name: "variable", env: "e", wantValue: "e", wantSrc: "USERSD_X"},
		{name: "flag wins", args: []string{"-x", "f"}, env: "e", wantValue: "f", wantSrc: "-x"},
		{name: "an empty flag is given", args: []string{"-x="}, env: "e", wantValue: "", wantSrc: "-x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			s.register(fs, "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			v, src := s.lookup(fs, func(k string) string {
				if k == s.env {
					return tt.env
				}
				return ""
			})
			if v != tt.wantValue || src != tt.wantSrc {
				t.Errorf("got %q from %s, want %q from %s", v, src, tt.wantValue, tt.wantSrc)
			}
		})
	}
}
