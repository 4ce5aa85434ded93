package attest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		pid   int
		comm  string
		ticks uint64
		err   bool
	}{
		{name: "plain", in: fakeStat(1234, "python3", 98765), pid: 1234, comm: "python3", ticks: 98765},
		{name: "comm with spaces", in: fakeStat(7, "my agent 2", 5), pid: 7, comm: "my agent 2", ticks: 5},
		{name: "comm with parentheses", in: fakeStat(7, "a) S 1 (b", 42), pid: 7, comm: "a) S 1 (b", ticks: 42},
		{name: "comm looking like fields", in: fakeStat(9, ") 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22", 3), pid: 9, comm: ") 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22", ticks: 3},
		{name: "empty comm", in: fakeStat(9, "", 3), pid: 9, comm: "", ticks: 3},
		{name: "no trailing newline", in: strings.TrimSpace(fakeStat(9, "x", 11)), pid: 9, comm: "x", ticks: 11},
		{name: "max ticks", in: fakeStat(9, "x", 1<<64-1), pid: 9, comm: "x", ticks: 1<<64 - 1},
		{name: "kernel real line", in: "1 (systemd) S 0 1 1 0 -1 4194560 45417 1488406 107 1045 89 226 2598 1326 20 0 1 0 27 23359488 3212 18446744073709551615 1 1 0 0 0 0 671173123 4096 1260 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0", pid: 1, comm: "systemd", ticks: 27},
		{name: "empty", in: "", err: true},
		{name: "no parentheses", in: "12 python 3 4", err: true},
		{name: "no pid", in: "(x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", err: true},
		{name: "bad pid", in: "x1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", err: true},
		{name: "zero pid", in: fakeStat(0, "x", 1), err: true},
		{name: "too few fields", in: "12 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18", err: true},
		{name: "bad start", in: "12 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 20", err: true},
		{name: "close before open", in: "12 )x( S", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStat([]byte(tt.in))
			if tt.err {
				if err == nil {
					t.Fatalf("parseStat(%q) = %+v, want error", tt.in, st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.pid != tt.pid || st.comm != tt.comm || st.startTicks != tt.ticks {
				t.Errorf("parseStat = %+v, want pid %d comm %q ticks %d", st, tt.pid, tt.comm, tt.ticks)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add(1, "python3", uint64(100))
	f.Add(2, "a) (b", uint64(0))
	f.Add(3, ")))", uint64(1<<63))
	f.Fuzz(func(t *testing.T, pid int, comm string, ticks uint64) {
		if pid <= 0 || strings.ContainsAny(comm, "\n") {
			// Still must not panic on whatever the line is.
			parseStat([]byte(fakeStat(pid, comm, ticks)))
			parseStat([]byte(comm))
			return
		}
		st, err := parseStat([]byte(fakeStat(pid, comm, ticks)))
		if err != nil {
			t.Fatalf("parseStat of a well-formed line with comm %q: %v", comm, err)
		}
		if st.pid != pid || st.comm != comm || st.startTicks != ticks {
			t.Fatalf("parseStat = %+v, want pid %d comm %q ticks %d", st, pid, comm, ticks)
		}
		parseStat([]byte(comm))
	})
}

func TestParseStatus(t *testing.T) {
	const real = "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\n" +
		"Uid:\t1000\t1001\t1002\t1003\nGid:\t100\t101\t102\t103\nFDSize:\t256\nGroups:\t4 24 27 \nVmPeak:\t  8000 kB\n"
	tests := []struct {
		name     string
		in       string
		uid, gid int
		groups   []int
		err      bool
	}{
		{name: "effective ids", in: real, uid: 1001, gid: 101, groups: []int{4, 24, 27}},
		{name: "no supplementary groups", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", uid: 0, gid: 0},
		{name: "no Groups line", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", err: true},
		{name: "no Uid line", in: "Gid:\t0\t0\t0\t0\nGroups:\n", err: true},
		{name: "short Uid", in: "Uid:\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: true},
		{name: "bad Gid", in: "Uid:\t0\t0\t0\t0\nGid:\t0\tx\t0\t0\nGroups:\n", err: true},
		{name: "no-id value", in: "Uid:\t0\t4294967295\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: true},
		{name: "bad group", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1 -2\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := parseStatus([]byte(tt.in))
			if tt.err {
				if err == nil {
					t.Fatalf("parseStatus = %+v, want error", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.uid != tt.uid || st.gid != tt.gid || fmt.Sprint(st.groups) != fmt.Sprint(tt.groups) {
				t.Errorf("parseStatus = %+v, want uid %d gid %d groups %v", st, tt.uid, tt.gid, tt.groups)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStatus(b)
		if err != nil {
			return
		}
		if st.uid < 0 || st.gid < 0 || !strings.Contains(string(b), strconv.Itoa(st.uid)) {
			t.Errorf("parseStatus(%q) = %+v", b, st)
		}
	})
}
