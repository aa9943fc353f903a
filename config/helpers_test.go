package config

import "strings"

// add appends text to a YAML document; rep replaces the first old with new.
func add(s string) func(string) string { return func(y string) string { return y + s } }

func rep(old, new string) func(string) string {
	return func(y string) string {
		if !strings.Contains(y, old) {
			panic("test fixture: " + old + " not found")
		}
		return strings.Replace(y, old, new, 1)
	}
}
