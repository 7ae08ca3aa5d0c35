package main

// Checks of the Dockerfile and deploy/ that need no Docker engine and no
// cluster: CI runs the Dockerfile's own `go build` line and inspects the
// binary, evaluates .dockerignore against the files that build reads,
// and cross-checks the manifests against config.go.

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dockerBuildArgs are the values the build-stage RUN line may expand:
// its ARGs as CI sets them, and BuildKit's automatic platform ARGs for
// the machine running the test.
var dockerBuildArgs = map[string]string{
	"VERSION":    "ci-test",
	"TARGETOS":   runtime.GOOS,
	"TARGETARCH": runtime.GOARCH,
}

// TestDockerfileBuild runs the Dockerfile's go build line, with the same
// environment and flags, and checks that the result is a static binary
// that reports the VERSION it was given.
func TestDockerfileBuild(t *testing.T) {
	goBin := deployGoBinary(t)
	instrs := dockerReadFile(t)
	run := dockerGoBuild(t, instrs)

	bin := filepath.Join(t.TempDir(), "wsbridge")
	args, out, err := dockerReplaceOutput(run.args, bin)
	if err != nil {
		t.Fatalf("Dockerfile line %d: %v", run.line, err)
	}
	if src := dockerCopySource(t, instrs); out != src {
		t.Errorf("go build writes %s but the final stage copies %s", out, src)
	}
	cmd := exec.CommandContext(t.Context(), goBin, append([]string{"build"}, args...)...)
	cmd.Env = append(os.Environ(), run.env...) // the last value of a key wins
	t.Logf("%s go build %q", strings.Join(run.env, " "), args)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary has a PT_INTERP program header: it needs a dynamic loader, which distroless/static lacks")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("reading DT_NEEDED: %v", err)
	}
	if len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v (DT_NEEDED); want none", libs)
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatalf("reading build info: %v", err)
	}
	for key, want := range map[string]string{"CGO_ENABLED": "0", "-trimpath": "true"} {
		if got := dockerBuildSetting(bi, key); got != want {
			t.Errorf("build setting %s = %q, want %q", key, got, want)
		}
	}

	vout, err := exec.CommandContext(t.Context(), bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, vout)
	}
	if !strings.Contains(string(vout), dockerBuildArgs["VERSION"]) {
		t.Errorf("wsbridge version printed %q, want it to contain %q (-X main.version)", vout, dockerBuildArgs["VERSION"])
	}
}

// TestDockerfileFinalStage checks the runtime image's settings against
// each other and against what the binary does.
func TestDockerfileFinalStage(t *testing.T) {
	final := dockerFinalStage(dockerReadFile(t))
	env := dockerEnv(t, final)

	if u := dockerLast(t, final, "USER"); !dockerNonRootUser(u.args) {
		t.Errorf("line %d: USER %s runs as root; want a non-root user", u.line, u.args)
	}

	entry := dockerExecForm(t, dockerLast(t, final, "ENTRYPOINT"))
	hc := dockerLast(t, final, "HEALTHCHECK")
	opts, cmd, ok := strings.Cut(hc.args, "CMD ")
	if !ok {
		t.Fatalf("line %d: HEALTHCHECK %s has no CMD", hc.line, hc.args)
	}
	var probe []string
	if err := json.Unmarshal([]byte(cmd), &probe); err != nil {
		t.Fatalf("line %d: HEALTHCHECK CMD must be exec form (the image has no shell): %v", hc.line, err)
	}
	if want := []string{entry[0], "healthcheck"}; !slices.Equal(probe, want) {
		t.Errorf("line %d: HEALTHCHECK CMD %q, want %q", hc.line, probe, want)
	}
	durations := map[string]time.Duration{}
	for _, o := range strings.Fields(opts) {
		k, v, _ := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		if k == "retries" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("line %d: HEALTHCHECK %s: %v", hc.line, o, err)
		}
		durations[k] = d
	}
	for _, k := range []string{"interval", "timeout", "start-period"} {
		if durations[k] <= 0 {
			t.Errorf("line %d: HEALTHCHECK needs --%s", hc.line, k)
		}
	}
	if durations["timeout"] > durations["interval"] {
		t.Errorf("line %d: HEALTHCHECK --timeout %v exceeds --interval %v", hc.line, durations["timeout"], durations["interval"])
	}

	_, port, err := net.SplitHostPort(env["BRIDGE_LISTEN"])
	if err != nil {
		t.Fatalf("ENV BRIDGE_LISTEN=%q: %v", env["BRIDGE_LISTEN"], err)
	}
	expose := dockerLast(t, final, "EXPOSE")
	if got := strings.TrimSuffix(expose.args, "/tcp"); got != port {
		t.Errorf("line %d: EXPOSE %s, want %s (the port of ENV BRIDGE_LISTEN=%s)", expose.line, expose.args, port, env["BRIDGE_LISTEN"])
	}

	vol := dockerLast(t, final, "VOLUME")
	var vols []string
	if err := json.Unmarshal([]byte(vol.args), &vols); err != nil {
		vols = strings.Fields(vol.args)
	}
	if want := []string{env["BRIDGE_DATA_DIR"]}; !slices.Equal(vols, want) {
		t.Errorf("line %d: VOLUME %q, want %q (ENV BRIDGE_DATA_DIR)", vol.line, vols, want)
	}
}

// TestDockerfileContext evaluates .dockerignore, as Docker does, against
// every file the build reads, so an allowlist that misses a new package
// fails here rather than in someone's docker build.
func TestDockerfileContext(t *testing.T) {
	goBin := deployGoBinary(t)
	src, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := dockerParseIgnore(string(src))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}

	cmd := exec.CommandContext(t.Context(), goBin, "list", "-deps", "-json=Dir,Module,GoFiles,CgoFiles,CFiles,HFiles,SFiles,SysoFiles,EmbedFiles", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	needed := []string{"go.mod", "go.sum"}
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p struct {
			Dir    string
			Module *struct{ Main bool }
			GoFiles, CgoFiles, CFiles, HFiles, SFiles, SysoFiles,
			EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // the standard library and the module cache
		}
		for _, files := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.SFiles, p.SysoFiles, p.EmbedFiles} {
			for _, f := range files {
				rel, err := filepath.Rel(root, filepath.Join(p.Dir, f))
				if err != nil {
					t.Fatal(err)
				}
				needed = append(needed, filepath.ToSlash(rel))
			}
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v; want the files of every package in the module", needed)
	}
	for _, f := range needed {
		if ignore.excludes(f) {
			t.Errorf(".dockerignore leaves out %s, which go build reads", f)
		}
	}
	// The point of the allowlist: none of these reach the context.
	for _, f := range []string{".git/HEAD", "main_test.go", "bridge/frame_test.go", "docs/OPERATIONS.md", "deploy/README.md", "test/integration/helpers_test.go", "bench/README.md", "data/jetstream/x", "wsbridge"} {
		if !ignore.excludes(f) {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
}

func TestDockerfileIgnoreMatch(t *testing.T) {
	ignore, err := dockerParseIgnore("# comment\n*\n!*.go\n!pkg/\n**/*_test.go\n/docs/**\n!docs/keep.md\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		excluded bool
	}{
		{"main.go", false},
		{"main_test.go", true},
		{"README.md", true},
		{"pkg/a.go", false},
		{"pkg/sub/a.go", false},
		{"pkg/sub/a_test.go", true},
		{"other/a.go", true},
		{"docs/keep.md", false},
		{"docs/x/y.md", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := ignore.excludes(tc.path); got != tc.excluded {
				t.Errorf("excludes(%q) = %v, want %v", tc.path, got, tc.excluded)
			}
		})
	}
	for _, bad := range []string{"[ab].go", `a\*`} {
		if _, err := dockerParseIgnore(bad); err == nil {
			t.Errorf("dockerParseIgnore(%q): no error; want one for syntax the matcher does not model", bad)
		}
	}
}

// TestDeployConfigNames checks that every BRIDGE_* name in the Dockerfile
// and deploy/ is a variable config.go reads: a misspelt one is silently
// ignored by envconfig.
func TestDeployConfigNames(t *testing.T) {
	valid := map[string]bool{}
	ct := reflect.TypeFor[config]()
	for i := range ct.NumField() {
		valid[ct.Field(i).Tag.Get("envconfig")] = true
	}
	files := []string{"Dockerfile"}
	err := filepath.WalkDir("deploy", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\bBRIDGE_[A-Z0-9_]+`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, n := range name.FindAllString(line, -1) {
				seen++
				if !valid[n] {
					t.Errorf("%s:%d: %s is not a configuration variable (config.go)", f, i+1, n)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no BRIDGE_* names found in Dockerfile and deploy/")
	}
}

// TestDeployGracePeriods checks that Kubernetes and Compose wait longer
// for a stopping bridge than its drain takes, or the drain is cut short
// by SIGKILL.
func TestDeployGracePeriods(t *testing.T) {
	t.Run("kubernetes", func(t *testing.T) {
		dep := deployReadFile(t, "deploy/kubernetes/deployment.yaml")
		grace := deployMustMatch(t, "deployment.yaml", dep, `(?m)^\s*terminationGracePeriodSeconds:\s*(\d+)\s*$`)
		secs, err := strconv.Atoi(grace)
		if err != nil {
			t.Fatal(err)
		}
		var preStop time.Duration
		if m := regexp.MustCompile(`preStop:\s*\n\s*sleep:\s*\n\s*seconds:\s*(\d+)`).FindStringSubmatch(dep); m != nil {
			n, _ := strconv.Atoi(m[1])
			preStop = time.Duration(n) * time.Second
		}
		var all strings.Builder
		files, _ := filepath.Glob("deploy/kubernetes/*.yaml")
		for _, f := range files {
			all.WriteString(deployReadFile(t, f))
		}
		drain := deployDrainTimeout(t, all.String())
		if g := time.Duration(secs) * time.Second; g <= preStop+drain {
			t.Errorf("terminationGracePeriodSeconds %v must exceed the preStop sleep %v plus BRIDGE_DRAIN_TIMEOUT %v", g, preStop, drain)
		}
	})
	t.Run("compose", func(t *testing.T) {
		src := deployReadFile(t, "deploy/compose/docker-compose.yml")
		drain := deployDrainTimeout(t, src)
		ms := regexp.MustCompile(`(?m)^\s*stop_grace_period:\s*"?([^"\s#]+)`).FindAllStringSubmatch(src, -1)
		if ms == nil {
			t.Fatalf("docker-compose.yml sets no stop_grace_period; docker's default (10s) does not exceed BRIDGE_DRAIN_TIMEOUT %v", drain)
		}
		for _, m := range ms {
			g, err := time.ParseDuration(m[1])
			if err != nil {
				t.Fatalf("stop_grace_period %q: %v", m[1], err)
			}
			if g <= drain {
				t.Errorf("stop_grace_period %v must exceed BRIDGE_DRAIN_TIMEOUT %v", g, drain)
			}
		}
	})
}

// deployDrainTimeout is the one BRIDGE_DRAIN_TIMEOUT set in src, as a
// ConfigMap or Compose key or as a container env entry, else the default.
func deployDrainTimeout(t *testing.T, src string) time.Duration {
	t.Helper()
	var vals []string
	for _, re := range []string{
		`(?m)^\s*BRIDGE_DRAIN_TIMEOUT:\s*"?([^"\s#]+)`,
		`name:\s*"?BRIDGE_DRAIN_TIMEOUT"?\s*\n\s*value:\s*"?([^"\s#]+)`,
	} {
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(src, -1) {
			vals = append(vals, m[1])
		}
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	if len(vals) > 1 {
		t.Fatalf("BRIDGE_DRAIN_TIMEOUT is set to several values %v; the grace periods are checked against one", vals)
	}
	v := ""
	if len(vals) == 1 {
		v = vals[0]
	} else {
		f, _ := reflect.TypeFor[config]().FieldByName("DrainTimeout")
		v = f.Tag.Get("default")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("BRIDGE_DRAIN_TIMEOUT %q: %v", v, err)
	}
	return d
}

func deployGoBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	return p
}

func deployReadFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deployMustMatch(t *testing.T, name, src, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s: nothing matches %s", name, re)
	}
	return m[1]
}

// dockerInstr is one Dockerfile instruction with its continuation lines
// joined.
type dockerInstr struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int // where it starts, from 1
}

func dockerReadFile(t *testing.T) []dockerInstr {
	t.Helper()
	instrs := dockerParse(deployReadFile(t, "Dockerfile"))
	if len(instrs) == 0 || instrs[0].cmd != "FROM" {
		t.Fatalf("Dockerfile: want instructions starting with FROM, got %v", instrs)
	}
	return instrs
}

// dockerParse splits src into instructions. Comment lines (and parser
// directives) are dropped, also between continuation lines, as Docker
// does; heredocs are not supported.
func dockerParse(src string) []dockerInstr {
	var out []dockerInstr
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(src, "\n") {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "#") || s == "" {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(s, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(s)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args), start})
		cur.Reset()
	}
	return out
}

// dockerFinalStage is the instructions of the last stage, FROM included.
func dockerFinalStage(instrs []dockerInstr) []dockerInstr {
	from := 0
	for i, in := range instrs {
		if in.cmd == "FROM" {
			from = i
		}
	}
	return instrs[from:]
}

func dockerLast(t *testing.T, instrs []dockerInstr, cmd string) dockerInstr {
	t.Helper()
	for i := len(instrs) - 1; i >= 0; i-- {
		if instrs[i].cmd == cmd {
			return instrs[i]
		}
	}
	t.Fatalf("Dockerfile: the final stage has no %s", cmd)
	return dockerInstr{}
}

func dockerExecForm(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("line %d: %s %s: want exec form, a JSON array (the image has no shell)", in.line, in.cmd, in.args)
	}
	return argv
}

// dockerEnv is the ENV of a stage: KEY=value pairs, or the legacy
// `ENV KEY value`.
func dockerEnv(t *testing.T, instrs []dockerInstr) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range instrs {
		if in.cmd != "ENV" {
			continue
		}
		words, err := dockerShellWords(in.args, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("line %d: ENV: %v", in.line, err)
		}
		if len(words) > 0 && !strings.Contains(words[0], "=") {
			env[words[0]] = strings.Join(words[1:], " ")
			continue
		}
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			env[k] = v
		}
	}
	return env
}

func dockerNonRootUser(user string) bool {
	u, _, _ := strings.Cut(strings.TrimSpace(user), ":")
	if n, err := strconv.Atoi(u); err == nil {
		return n != 0
	}
	return u != "" && u != "root"
}

// dockerGoBuildLine is the go build command of a RUN instruction.
type dockerGoBuildLine struct {
	env  []string // KEY=value assignments before `go build`
	args []string // after `go build`, variables expanded
	line int
}

// dockerGoBuild finds the one RUN line that runs go build and expands
// it with dockerBuildArgs.
func dockerGoBuild(t *testing.T, instrs []dockerInstr) dockerGoBuildLine {
	t.Helper()
	var found []dockerGoBuildLine
	for _, in := range instrs {
		if in.cmd != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		words, err := dockerShellWords(in.args, func(k string) (string, bool) {
			v, ok := dockerBuildArgs[k]
			return v, ok
		})
		if err != nil {
			t.Fatalf("Dockerfile line %d: %v (known build args: %v)", in.line, err, dockerBuildArgs)
		}
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			words = words[1:] // RUN flags: --mount=..., --network=...
		}
		for cmd := range strings.SplitSeq(strings.Join(words, "\x00"), "\x00&&\x00") {
			w := strings.Split(cmd, "\x00")
			i := slices.Index(w, "go")
			if i < 0 || i+1 >= len(w) || w[i+1] != "build" {
				continue
			}
			for _, a := range w[:i] {
				if k, _, ok := strings.Cut(a, "="); !ok || k == "" {
					t.Fatalf("Dockerfile line %d: %q before go build is not an environment assignment", in.line, a)
				}
			}
			found = append(found, dockerGoBuildLine{env: w[:i], args: w[i+2:], line: in.line})
		}
	}
	if len(found) != 1 {
		t.Fatalf("Dockerfile: want one go build command, found %d", len(found))
	}
	return found[0]
}

// dockerReplaceOutput returns args with the -o path replaced by bin,
// and the path it replaced.
func dockerReplaceOutput(args []string, bin string) ([]string, string, error) {
	out := slices.Clone(args)
	for i, a := range out {
		switch {
		case a == "-o" && i+1 < len(out):
			old := out[i+1]
			out[i+1] = bin
			return out, old, nil
		case strings.HasPrefix(a, "-o="):
			out[i] = "-o=" + bin
			return out, strings.TrimPrefix(a, "-o="), nil
		}
	}
	return nil, "", fmt.Errorf("go build has no -o")
}

// dockerCopySource is what the final stage copies from another stage to
// the ENTRYPOINT's path.
func dockerCopySource(t *testing.T, instrs []dockerInstr) string {
	t.Helper()
	final := dockerFinalStage(instrs)
	entry := dockerExecForm(t, dockerLast(t, final, "ENTRYPOINT"))[0]
	for _, in := range final {
		f := strings.Fields(in.args)
		if in.cmd == "COPY" && len(f) == 3 && strings.HasPrefix(f[0], "--from=") && f[2] == entry {
			return f[1]
		}
	}
	t.Fatalf("Dockerfile: the final stage copies nothing from a build stage to %s", entry)
	return ""
}

func dockerBuildSetting(bi *buildinfo.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// dockerShellWords splits s into words as sh would for a simple
// command: quotes, backslash escapes, $VAR and ${VAR} from lookup, and &&
// as a word of its own. Anything else that means something to sh (|, ;,
// redirections, command substitution, globbing) is an error rather than
// a wrong guess, and so is a variable that lookup does not know.
func dockerShellWords(s string, lookup func(string) (string, bool)) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	expand := func(i int) (int, error) { // s[i] == '$'
		j, name := i+1, ""
		if j < len(s) && s[j] == '{' {
			end := strings.IndexByte(s[j:], '}')
			if end < 0 {
				return 0, fmt.Errorf("unterminated ${")
			}
			name, j = s[j+1:j+end], j+end+1
		} else {
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			name = s[i+1 : j]
		}
		v, ok := lookup(name)
		if !ok || name == "" {
			return 0, fmt.Errorf("unknown variable $%s", name)
		}
		w.WriteString(v)
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
			i++
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			words = append(words, "&&")
			i += 2
		case strings.IndexByte("|;<>`()*?[&", c) >= 0:
			return nil, fmt.Errorf("unsupported shell syntax %q at %d", c, i)
		case c == '\\' && i+1 < len(s):
			w.WriteByte(s[i+1])
			inWord = true
			i += 2
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated '")
			}
			w.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`$"\`, s[i+1]) >= 0:
					i++
					w.WriteByte(s[i])
				case s[i] == '$':
					j, err := expand(i)
					if err != nil {
						return nil, err
					}
					i = j - 1
				case s[i] == '`':
					return nil, fmt.Errorf("unsupported command substitution")
				default:
					w.WriteByte(s[i])
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf(`unterminated "`)
			}
			i++
		case c == '$':
			j, err := expand(i)
			if err != nil {
				return nil, err
			}
			inWord = true
			i = j
		default:
			w.WriteByte(c)
			inWord = true
			i++
		}
	}
	flush()
	return words, nil
}

// dockerIgnore is a parsed .dockerignore. It models Docker's matching for
// the syntax it accepts: *, ?, **, leading ! and the rule that a pattern
// matching a parent directory matches everything below it; the last
// matching pattern decides.
type dockerIgnore []struct {
	re      *regexp.Regexp
	include bool // a ! pattern
}

func dockerParseIgnore(src string) (dockerIgnore, error) {
	var d dockerIgnore
	for line := range strings.SplitSeq(src, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		include := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(path.Clean(strings.TrimSpace(strings.TrimPrefix(p, "!"))), "/")
		if strings.ContainsAny(p, `[\`) {
			return nil, fmt.Errorf("pattern %q: character classes and escapes are not modelled", line)
		}
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**"):
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
				}
				if i+1 == len(p) {
					re.WriteString(".*")
				} else {
					re.WriteString("(.*/)?")
				}
			case p[i] == '*':
				re.WriteString("[^/]*")
			case p[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		re.WriteString("$")
		d = append(d, struct {
			re      *regexp.Regexp
			include bool
		}{regexp.MustCompile(re.String()), include})
	}
	return d, nil
}

// excludes reports whether file (slash-separated, relative to the
// context) stays out of the build context.
func (d dockerIgnore) excludes(file string) bool {
	excluded := false
	parts := strings.Split(file, "/")
	for _, p := range d {
		for i := range parts {
			if p.re.MatchString(strings.Join(parts[:i+1], "/")) {
				excluded = !p.include
				break
			}
		}
	}
	return excluded
}
