package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the dotted YAML key, e.g. "mail.smtp.port"; "" for the file as
	// a whole.
	Key string
	// Line is the 1-based line in the file, or 0 when unknown.
	Line int
	// Msg says what is wrong and what to do.
	Msg string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one file. Its message is one line per
// problem, each prefixed with the file name.
type Error struct {
	// Path is the config file.
	Path string
	// Problems are in file order where lines are known.
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = e.Path + ": " + p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the file at path, rejects unknown keys, fills defaults and
// validates the settings every role needs (see Validate). Any problems come
// back as a *Error. A missing file gives an error for which IsNotFound is
// true.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w: on a staff PC run `ipsync join FILE` with your invitation; on the server run `ipsync init`; or write it from config.example.yaml, or pass --config FILE", path, errNoConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var mode fs.FileMode
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return parse(path, data, mode)
}

// Parse is Load for bytes already read; path is used in messages and to
// resolve relative paths. The file's mode is not known, so a literal
// secret draws the warning of a file only its owner can read.
func Parse(path string, data []byte) (*Config, error) {
	return parse(path, data, 0)
}

// parse is Parse for a file of the given permission bits (0 when unknown).
func parse(path string, data []byte, mode fs.FileMode) (*Config, error) {
	cfg := &Config{Path: path, fileMode: mode}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, errEOF) || strings.Contains(err.Error(), "EOF") {
			return nil, &Error{Path: path, Problems: []Problem{{Msg: "the file is empty; start from config.example.yaml"}}}
		}
		return nil, &Error{Path: path, Problems: []Problem{{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Path: path, Problems: []Problem{{Line: root.Line, Msg: "the top level must be a mapping of keys (role:, name:, mail:, …)"}}}
	}
	// Every problem in the file is reported at once: unknown and duplicated
	// keys, values that cannot be read (each such value is left at its
	// default, and the decoder goes on to the next), then the rules every
	// value that could be read must meet.
	var probs []Problem
	lines, keyLines := map[int]string{}, map[string]int{}
	checkKeys(root, reflect.TypeOf(Config{}), "", &probs, lines, keyLines)
	scalars := map[string]string{}
	scalarKeys(root, "", scalars)
	unread := map[string]bool{} // keys whose value could not be read
	if err := root.Decode(cfg); err != nil {
		for _, p := range decodeProblems(err, lines, scalars) {
			probs = append(probs, p)
			unread[p.Key] = true
		}
	}
	cfg.ApplyDefaults()
	for _, p := range cfg.validate("") {
		key := strings.SplitN(p.Key, "[", 2)[0]
		if coveredBy(key, unread) {
			continue // its value is a default standing in for one not read
		}
		if key == "publisher.to" && keyLines[key] == 0 {
			continue // the default, mail.address, has its own problem
		}
		p.Line = lineOf(keyLines, p.Key)
		probs = append(probs, p)
	}
	if len(probs) > 0 {
		// File order; problems without a line (missing keys) last.
		sort.SliceStable(probs, func(i, j int) bool {
			a, b := probs[i].Line, probs[j].Line
			return a != 0 && (b == 0 || a < b)
		})
		return nil, &Error{Path: path, Problems: probs}
	}
	cfg.keyLines = keyLines
	cfg.Warnings = append(cfg.literalSecretWarnings(), cfg.portWarnings()...)
	cfg.Warnings = append(cfg.Warnings, cfg.secretFileWarnings()...)
	cfg.Warnings = append(cfg.Warnings, cfg.oauth2Warnings()...)
	return cfg, nil
}

var errEOF = errors.New("EOF")

// lineOf returns the line of key ("a.b[2]" counts as "a.b"), or of the
// nearest enclosing key written in the file (a missing mail.oauth2.client_id
// points at mail.oauth2), or 0.
func lineOf(keyLines map[string]int, key string) int {
	k := strings.SplitN(key, "[", 2)[0]
	for k != "" {
		if l, ok := keyLines[k]; ok {
			return l
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// coveredBy reports whether key, or a mapping that holds it, is in keys.
func coveredBy(key string, keys map[string]bool) bool {
	for k := range keys {
		if k != "" && (key == k || strings.HasPrefix(key, k+".")) {
			return true
		}
	}
	return false
}

// checkKeys walks a mapping node beside the struct type t and records every
// key that t has no field for, and every duplicated key, which it removes
// from n (the first one stays).
// lines maps the line of each value to its dotted key, for messages from
// the decoder, which know only the line; keyLines maps each key to its line.
func checkKeys(n *yaml.Node, t reflect.Type, prefix string, probs *[]Problem, lines map[int]string, keyLines map[string]int) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	kept := n.Content[:0:0]
	defer func() { n.Content = kept }()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		if seen[k.Value] {
			// Dropped, so that the decoder reads the rest of this
			// mapping (it stops at a repeated key).
			*probs = append(*probs, Problem{Key: key, Line: k.Line, Msg: "appears twice; keep one"})
			continue
		}
		seen[k.Value] = true
		kept = append(kept, k, v)
		ft, ok := fields[k.Value]
		if !ok {
			msg := "unknown key"
			if s := closest(k.Value, names); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += fmt.Sprintf("; keys here are: %s", strings.Join(names, ", "))
			}
			*probs = append(*probs, Problem{Key: key, Line: k.Line, Msg: msg})
			continue
		}
		lines[k.Line] = key
		if v.Line != k.Line {
			lines[v.Line] = key
		}
		keyLines[key] = k.Line
		checkKeys(v, ft, key+".", probs, lines, keyLines)
	}
}

// closest returns the name within edit distance 2 of s, or "".
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decodeProblems turns yaml.v3's type errors ("line 3: cannot unmarshal
// !!str `abc` into int") into Problems.
func decodeProblems(err error, lines map[int]string, scalars map[string]string) []Problem {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []Problem{{Msg: err.Error()}}
	}
	var probs []Problem
	for _, e := range te.Errors {
		if strings.Contains(e, "already set in type") || strings.Contains(e, "already defined at line") {
			continue // a duplicated key, which checkKeys reports
		}
		p := Problem{Msg: e}
		var line int
		if _, scanErr := fmt.Sscanf(e, "line %d:", &line); scanErr == nil {
			p.Line = line
			p.Key = lines[line]
			// Several keys may share a line ({host: h, port: abc}): the
			// one holding the value the decoder quotes is the one.
			if _, rest, ok := strings.Cut(e, "`"); ok {
				if val, _, ok := strings.Cut(rest, "`"); ok {
					if k, ok := scalars[scalarKey(line, val)]; ok {
						p.Key = k
					}
				}
			}
			p.Msg = strings.TrimSpace(e[strings.Index(e, ":")+1:])
		}
		p.Msg = friendlyType(p.Msg)
		probs = append(probs, p)
	}
	return probs
}

// scalarKeys maps each scalar value of the document under n (keyed by
// scalarKey) to its dotted key.
func scalarKeys(n *yaml.Node, prefix string, out map[string]string) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch v.Kind {
		case yaml.ScalarNode:
			out[scalarKey(v.Line, v.Value)] = prefix + k.Value
		case yaml.MappingNode:
			scalarKeys(v, prefix+k.Value+".", out)
		}
	}
}

func scalarKey(line int, value string) string { return fmt.Sprintf("%d\x00%s", line, value) }

func friendlyType(msg string) string {
	r := strings.NewReplacer(
		"cannot unmarshal !!str", "expected a different kind of value, got the text",
		"cannot unmarshal !!seq", "expected a single value, got a list",
		"cannot unmarshal !!map", "expected a single value, got a mapping",
		"into int", "where a whole number is needed",
		"into float64", "where a number is needed",
		"into bool", "where true or false is needed",
		"into []string", "where a list is needed (write [a, b] or one '- item' per line)",
		"into string", "where text is needed",
	)
	return mappingType.ReplaceAllString(r.Replace(msg), "where a mapping of keys is needed")
}

// mappingType is how the decoder names a section of the file it could not
// fill ("into config.Mail").
var mappingType = regexp.MustCompile(`into config\.[A-Za-z]+`)
