package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrExists is returned by WriteFile when the file exists and overwrite is
// false.
var ErrExists = errors.New("a config file is already there")

// Marshal returns c as YAML with only the keys that are set (zero values are
// left out, so the file stays short and the roles' defaults apply). Secrets
// are written as their references; a literal secret is written as
// "REDACTED", so a config meant for writing holds references only. Comment
// lines in header are put first.
func (c *Config) Marshal(header string) ([]byte, error) {
	root := structNode(reflect.ValueOf(*c))
	var buf bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		if header != "" {
			buf.WriteString("# " + line + "\n")
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// structNode is the mapping of the set fields of the struct v.
func structNode(v reflect.Value) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fv := v.Field(i)
		if fv.IsZero() {
			continue
		}
		var val *yaml.Node
		_, marshaler := fv.Interface().(yaml.Marshaler)
		if fv.Kind() == reflect.Struct && !marshaler {
			val = structNode(fv)
			if len(val.Content) == 0 {
				continue
			}
		} else {
			val = &yaml.Node{}
			if err := val.Encode(fv.Interface()); err != nil {
				continue // every field type of Config encodes
			}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, val)
	}
	return n
}

// WriteFile writes data to path with mode 0600, creating the directory
// (mode 0700) when needed. Without overwrite it refuses an existing file
// with an error wrapping ErrExists; with overwrite it replaces the file in
// one step (write a temporary file, then rename).
func WriteFile(path string, data []byte, overwrite bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if !overwrite {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("write config: %w", err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return fmt.Errorf("write config %s: %w", path, err)
		}
		return nil
	}
	return replaceFile(path, data, 0o600)
}

// replaceFile writes data to a temporary file beside path and renames it
// over path.
func replaceFile(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ipsync-config-*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// AddRecipient adds address to publisher.to in the config file at path,
// editing the YAML tree so that comments and the order of keys stay (the
// indentation becomes two spaces). When publisher.to is not written, the
// list becomes [mail.address, address], so the mailbox used so far still
// gets the messages. It reports whether the file changed: an address
// already listed (in any letter case) leaves it as it is. The edited file
// must still load; the old one is kept otherwise.
func AddRecipient(path, address string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read config: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return false, fmt.Errorf("%s: not a YAML mapping; fix the file first (ipsync check)", path)
	}
	root := doc.Content[0]
	pub := mapValue(root, "publisher")
	if pub == nil {
		pub = &yaml.Node{Kind: yaml.MappingNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "publisher"}, pub)
	}
	if pub.Kind != yaml.MappingNode {
		return false, fmt.Errorf("%s: line %d: publisher: is not a mapping", path, pub.Line)
	}
	to := mapValue(pub, "to")
	if to == nil {
		to = &yaml.Node{Kind: yaml.SequenceNode}
		if own := mapValue(mapValue(root, "mail"), "address"); own != nil && own.Value != "" {
			to.Content = append(to.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: own.Value})
		}
		pub.Content = append(pub.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "to"}, to)
	}
	if to.Kind != yaml.SequenceNode {
		return false, fmt.Errorf("%s: line %d: publisher.to: is not a list", path, to.Line)
	}
	for _, n := range to.Content {
		if strings.EqualFold(n.Value, address) {
			return false, nil
		}
	}
	to.Content = append(to.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: address})
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return false, fmt.Errorf("edit config: %w", err)
	}
	enc.Close()
	if _, err := Parse(path, buf.Bytes()); err != nil {
		return false, fmt.Errorf("adding %s to publisher.to would make the file invalid: %w", address, err)
	}
	if err := replaceFile(path, buf.Bytes(), fi.Mode().Perm()); err != nil {
		return false, err
	}
	return true, nil
}

// mapValue returns the value of key in the mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
