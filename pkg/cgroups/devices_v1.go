package cgroups

import "fmt"

// The v1 devices controller keeps, per group, a default (allow or deny
// every device) and a list of exceptions to it:
//
//	echo a > devices.deny              default deny, no exception
//	echo "c 1:3 rwm" > devices.allow   an exception: /dev/null
//	cat devices.list                   c 1:3 rwm
//
// Writing "a" to devices.allow makes the default allow, and each line
// then written to devices.deny an exception that refuses. A group can
// never allow more than its parent.

// A deviceWrite is one line written to devices.allow or devices.deny.
type deviceWrite struct{ file, line string }

// v1DeviceWrites turns rules into writes with the rules' last-match
// meaning: the last "a" rule sets the default (deny when there is none),
// the rules before it never decide, and each rule after it adds or removes
// an exception.
func v1DeviceWrites(rules []DeviceRule) []deviceWrite {
	start, first := 0, deviceWrite{"devices.deny", "a"}
	for i, r := range rules {
		switch {
		case r.allowAll():
			start, first = i+1, deviceWrite{"devices.allow", "a"}
		case r.denyAll():
			start, first = i+1, deviceWrite{"devices.deny", "a"}
		}
	}
	out := []deviceWrite{first}
	for _, r := range rules[start:] {
		file := "devices.deny"
		if r.Allow {
			file = "devices.allow"
		}
		out = append(out, deviceWrite{file, r.entry()})
	}
	return out
}

// setDevices is the v1 driver's part of Set. Replacing the rules of a
// running group goes through "deny all" for a moment.
func (g *v1) setDevices(rules []DeviceRule) error {
	if rules == nil {
		return nil
	}
	dir := g.dirs["devices"]
	if dir == "" {
		return fmt.Errorf("%w: v1 devices hierarchy is not mounted, so device rules cannot be enforced", ErrControllerMissing)
	}
	for _, w := range v1DeviceWrites(rules) {
		if err := g.fs.write(dir, w.file, w.line); err != nil {
			return err
		}
	}
	return nil
}
