package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

func init() {
	// -update may also be declared by another golden test in this package.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite generated sections (README.md's configuration table)")
	}
}

func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const (
	configBegin = "<!-- config:begin -->"
	configEnd   = "<!-- config:end -->"
)

// usageVar is one variable as `wsbridge -h` prints it.
type usageVar struct{ name, def, desc string }

// parseUsage reads the variables out of `wsbridge -h`: a line with the
// name, then an indented description ending in "(default X)" when the
// variable has a default.
func parseUsage(out string) ([]usageVar, error) {
	var vars []usageVar
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "BRIDGE_") {
			continue
		}
		v := usageVar{name: strings.TrimSpace(lines[i])}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "    ") {
			return nil, fmt.Errorf("%s has no description line", v.name)
		}
		i++
		v.desc = strings.TrimSpace(lines[i])
		if at := strings.LastIndex(v.desc, " (default "); at >= 0 && strings.HasSuffix(v.desc, ")") {
			v.def = v.desc[at+len(" (default ") : len(v.desc)-1]
			v.desc = v.desc[:at]
		}
		vars = append(vars, v)
	}
	return vars, nil
}

// renderTable is README.md's configuration table, one row per variable.
func renderTable(vars []usageVar) string {
	cell := strings.NewReplacer("|", `\|`, "*", `\*`).Replace
	var b strings.Builder
	b.WriteString("| variable | default | description |\n|---|---|---|\n")
	for _, v := range vars {
		def := ""
		if v.def != "" {
			def = "`" + v.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, def, cell(v.desc))
	}
	return b.String()
}

func TestParseUsage(t *testing.T) {
	out := "header\n\nBRIDGE_A\n    first (default 5s)\nBRIDGE_B\n    second, (default: none) here\n"
	got, err := parseUsage(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []usageVar{{"BRIDGE_A", "5s", "first"}, {"BRIDGE_B", "", "second, (default: none) here"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := parseUsage("BRIDGE_A\nBRIDGE_B\n"); err == nil {
		t.Fatal("a variable without a description parsed")
	}
}

// TestREADMEConfigTable keeps README.md's table in step with config.go.
// go test -run TestREADMEConfigTable . -update rewrites it.
func TestREADMEConfigTable(t *testing.T) {
	var buf bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &buf, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	vars, err := parseUsage(buf.String())
	if err != nil {
		t.Fatalf("parsing wsbridge -h: %v\n%s", err, buf.String())
	}
	if n := reflect.TypeFor[config]().NumField(); len(vars) != n {
		t.Fatalf("parsed %d variables from wsbridge -h, config has %d fields:\n%s", len(vars), n, buf.String())
	}
	for _, v := range vars {
		if v.desc == "" {
			t.Errorf("%s has no desc tag", v.name)
		}
		if strings.Contains(v.desc, "(default ") {
			t.Errorf("%s: a description must not contain %q: it would read as the default", v.name, "(default ")
		}
	}
	want := "\n" + renderTable(vars)

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	b := bytes.Index(readme, []byte(configBegin))
	e := bytes.Index(readme, []byte(configEnd))
	if b < 0 || e < b {
		t.Fatalf("README.md lacks the %s … %s markers", configBegin, configEnd)
	}
	got := string(readme[b+len(configBegin) : e])
	if got == want {
		return
	}
	if updating() {
		out := string(readme[:b+len(configBegin)]) + want + string(readme[e:])
		if err := os.WriteFile("README.md", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md: configuration table rewritten")
		return
	}
	t.Errorf("README.md's configuration table differs from wsbridge -h; run\n\tgo test -run TestREADMEConfigTable . -update\n%s", lineDiff(got, want))
}

// lineDiff lists the lines only in README.md (-) and only in the
// generated table (+).
func lineDiff(got, want string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	inGot, inWant := in(got), in(want)
	var b strings.Builder
	b.WriteString("--- README.md\n+++ generated\n")
	for _, l := range strings.Split(got, "\n") {
		if !inWant[l] {
			b.WriteString("-" + l + "\n")
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !inGot[l] {
			b.WriteString("+" + l + "\n")
		}
	}
	if b.Len() == len("--- README.md\n+++ generated\n") {
		b.WriteString("(same lines, different order or blank lines)\n")
	}
	return b.String()
}
