package privileges

import (
	"slices"
	"strings"
	"testing"
)

func TestCapabilities(t *testing.T) {
	all := allCapabilities()
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
	}{
		{name: "defaults", want: sortCapabilities(DefaultCapabilities)},
		{name: "drop ALL, add one", add: []string{"net_bind_service"}, drop: []string{"ALL"},
			want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "drop ALL alone", drop: []string{"all"}, want: nil},
		{name: "add ALL minus one", add: []string{"ALL"}, drop: []string{"CAP_SYS_ADMIN"},
			want: slices.DeleteFunc(slices.Clone(all), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "privileged ignores drop", drop: []string{"CHOWN"}, privileged: true, want: all},
		{name: "prefix and case", add: []string{"Sys_Admin", "cap_net_admin"}, drop: []string{"CAP_MKNOD", "kill"},
			want: sortCapabilities(append(slices.DeleteFunc(slices.Clone(DefaultCapabilities),
				func(c string) bool { return c == "CAP_MKNOD" || c == "CAP_KILL" }), "CAP_SYS_ADMIN", "CAP_NET_ADMIN"))},
		{name: "duplicates", add: []string{"CHOWN", "chown"}, want: sortCapabilities(DefaultCapabilities)},
	} {
		got, err := Capabilities(tc.add, tc.drop, tc.privileged)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v\nwant %v", tc.name, got, tc.want)
		}
	}
	if len(DefaultCapabilities) != 14 {
		t.Errorf("docker has 14 default capabilities, we have %d", len(DefaultCapabilities))
	}
}

func TestCapabilitiesUnknown(t *testing.T) {
	for _, in := range []string{"foo", "CAP_FOO"} {
		_, err := Capabilities([]string{in}, nil, false)
		if err == nil || err.Error() != `unknown capability "CAP_FOO"` {
			t.Errorf("add %q: err = %v", in, err)
		}
		if _, err := Capabilities(nil, []string{in}, false); err == nil {
			t.Errorf("drop %q accepted", in)
		}
	}
}

func TestCapabilityTable(t *testing.T) {
	// Spot-check numbers against linux/capability.h.
	for name, want := range map[string]int{"CAP_CHOWN": 0, "CAP_SETPCAP": 8, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27, "CAP_CHECKPOINT_RESTORE": 40} {
		if n, ok := capabilityNumber(name); !ok || n != want {
			t.Errorf("%s = %d, want %d", name, n, want)
		}
	}
	if last := lastCap(); last < 30 || last >= len(capabilityNames) {
		t.Errorf("lastCap() = %d", last)
	}
	if got := maskNames(1<<0 | 1<<21); got != "cap_chown,cap_sys_admin" {
		t.Errorf("maskNames = %q", got)
	}
	if _, err := capabilityMask([]string{"ALL"}); err == nil || !strings.Contains(err.Error(), "ALL") {
		t.Errorf("capabilityMask(ALL) err = %v", err)
	}
}
