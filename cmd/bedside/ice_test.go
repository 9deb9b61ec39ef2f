package main

import (
	"io"
	"strings"
	"testing"

	"github.com/bedside-health/bedside/turnserver"
)

func TestICEFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // error text; "" for success
	}{
		{"defaults", nil, nil, ""},
		{"ports and addresses", []string{"--ice-udp-port", "127.0.0.1:5000", "--ice-tcp-port", "5001", "--turn-port", "3478"}, nil, ""},
		{"from the environment", nil, map[string]string{"BEDSIDE_ICE_UDP_PORT": "5000", "BEDSIDE_ICE_TCP_PORT": "off", "BEDSIDE_TURN_PORT": "3478"}, ""},
		{"same number, other protocols", []string{"--ice-udp-port", "3478", "--ice-tcp-port", "3479", "--turn-port", "off"}, nil, ""},
		{"port zero never clashes", []string{"--ice-udp-port", "0", "--ice-tcp-port", "0", "--turn-port", "0", "--addr", ":0"}, nil, ""},
		{"distinct addresses", []string{"--ice-tcp-port", "127.0.0.1:8080", "--addr", "127.0.0.2:8080"}, nil, ""},
		{"udp port too large", []string{"--ice-udp-port", "70000"}, nil, "--ice-udp-port \"70000\": want a port (0 to 65535) or IP:PORT"},
		{"udp port not a number", []string{"--ice-udp-port", "ten"}, nil, "--ice-udp-port \"ten\""},
		{"udp cannot be off", []string{"--ice-udp-port", "off"}, nil, "--ice-udp-port \"off\""},
		{"negative tcp port", []string{"--ice-tcp-port", "-1"}, nil, "--ice-tcp-port \"-1\": want a port (0 to 65535) or IP:PORT, or off"},
		{"host that is not an address", []string{"--ice-udp-port", "media.example.org:5000"}, nil, "is not an IP address of this machine"},
		{"wildcard host spelled out", []string{"--turn-port", "0.0.0.0:3478"}, nil, "leave it out"},
		{"tcp port clashes with --addr", []string{"--ice-tcp-port", "8080", "--addr", ":8080"}, nil, "--addr :8080 and --ice-tcp-port :8080 would share TCP port 8080"},
		{"turn clashes with ice tcp", []string{"--ice-tcp-port", "3478", "--turn-port", "3478"}, nil, "would share TCP port 3478"},
		{"turn clashes with ice udp", []string{"--ice-udp-port", "3478", "--ice-tcp-port", "off", "--turn-port", "3478"}, nil, "would share UDP port 3478"},
		{"turn clashes with --addr", []string{"--turn-port", "127.0.0.1:9000", "--addr", ":9000"}, nil, "would share TCP port 9000"},
		{"retired range flag", []string{"--ice-udp-ports", "50000-50100"}, nil, "--ice-udp-ports (BEDSIDE_ICE_UDP_PORTS) is retired"},
		{"retired range variable", nil, map[string]string{"BEDSIDE_ICE_UDP_PORTS": "50000-50100"}, "is retired"},
		{"bad nat address", []string{"--ice-nat-ip", "203.0.113"}, nil, "--ice-nat-ip \"203.0.113\" is not an IP address"},
		{"short turn secret", []string{"--turn-secret", "short"}, nil, "--turn-secret must be at least 16 characters"},
		{"bad turn peers", []string{"--turn-peers", "10.0.0.0/33"}, nil, "--turn-peers: \"10.0.0.0/33\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			_, err := parseServe(tc.args, func(k string) string { return env[k] }, io.Discard)
			if tc.want == "" && err != nil {
				t.Fatalf("parseServe(%v): %v", tc.args, err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("parseServe(%v) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestICESettingsBecomeMediaConfig(t *testing.T) {
	c, err := parseServe(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ice.udp != ":10000" || c.ice.tcp != ":10000" || c.ice.turn != "" {
		t.Fatalf("defaults: udp %q tcp %q turn %q; want :10000, :10000 and off", c.ice.udp, c.ice.tcp, c.ice.turn)
	}
	key := []byte("a server key of thirty-two bytes or more")
	c, err = parseServe([]string{"--turn-port", "3478", "--ice-nat-ip", "203.0.113.7",
		"--ice-servers", "stun:stun.example.org:3478, turn:turn.example.org:3478?transport=tcp, turn:bob:pw@relay.example.org:3478"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := mediaConfig(c.ice, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(mc.TURNSecret) != turnserver.DeriveSecret(key) {
		t.Error("without --turn-secret the TURN secret is not derived from the server key")
	}
	if mc.TURN.UDPAddr != ":3478" || mc.TURN.TCPAddr != ":3478" || mc.TURN.Host != "203.0.113.7" {
		t.Errorf("turn relay %+v: want UDP and TCP on :3478, named by the NAT address", mc.TURN)
	}
	if len(mc.ICEServers) != 3 || mc.ICEServers[1].Username != "" || mc.ICEServers[2].Username != "bob" || mc.ICEServers[2].URLs[0] != "turn:relay.example.org:3478" {
		t.Errorf("ice servers %+v", mc.ICEServers)
	}
	c.ice.turnSecret = "an explicit shared secret"
	if mc, _ := mediaConfig(c.ice, key); string(mc.TURNSecret) != "an explicit shared secret" {
		t.Error("--turn-secret is not the TURN secret")
	}
	for _, bad := range []string{"http://x", "stun:u:p@host:3478", "turn:u@host:3478", "turn:"} {
		c.ice.servers = bad
		if _, err := mediaConfig(c.ice, key); err == nil {
			t.Errorf("ice server %q accepted", bad)
		} else if strings.Contains(err.Error(), ":p@") {
			t.Errorf("error shows a password: %v", err)
		}
	}
}
