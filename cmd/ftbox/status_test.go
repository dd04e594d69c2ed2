package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"ftbox/appliance"
)

func TestRenderStatusExitCodes(t *testing.T) {
	var out bytes.Buffer
	code, err := renderStatus(&out, nil, errors.New("dial unix /run/ftbox/ftbox.sock: connect: no such file or directory"), false)
	if err != nil || code != appliance.ExitUnknown || !strings.HasPrefix(out.String(), "UNKNOWN: ") {
		t.Fatalf("unreachable: code %d err %v out %q", code, err, out.String())
	}
	out.Reset()
	code, _ = renderStatus(&out, nil, errors.New("gone"), true)
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || code != 3 || m["schema_version"] != 1.0 || m["health"] != "UNKNOWN" {
		t.Fatalf("unreachable json: %d %v %s", code, err, out.String())
	}
	s := &appliance.Status{SchemaVersion: 1, Box: "b", Role: "HALTED", Protection: appliance.Halted, Health: "CRITICAL", ExitCode: 2,
		Peer: appliance.PeerStatus{LastHeardAgoMS: -1, RTTMS: -1}, Replication: appliance.ReplicationStatus{OldestHeldAgeMS: -1}}
	out.Reset()
	code, err = renderStatus(&out, s, nil, false)
	if err != nil || code != 2 || !strings.Contains(out.String(), "HALTED") {
		t.Fatalf("halted: %d %v %q", code, err, out.String())
	}
	out.Reset()
	code, err = renderStatus(&out, s, nil, true)
	if err != nil || code != 2 || !strings.Contains(out.String(), `"schema_version": 1`) {
		t.Fatalf("halted json: %d %v %q", code, err, out.String())
	}
}
