package learn

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Learning MCP calls, token exchanges and tasks.
//
// An MCP call becomes one rule per (server, tool, resource or prompt).
// When every call of a tool recorded its arguments (the MCPServer's
// log_arguments), the rule gets a `when` condition over mcp.args that is
// no broader than what was observed, by these rules:
//
//   - only argument names that were observed may appear;
//   - an argument whose observed values are strings, integers or booleans,
//     at most MaxValues distinct ones of at most MaxValueLen bytes, must be
//     one of them (an argument missing from some calls may be missing);
//   - an argument with more (or longer) values, all strings that are
//     absolute paths without "..", must be a string that starts with their
//     longest common directory ("/data/reports/") when that is not "/",
//     contains no ".." and is no longer than the longest observed;
//   - other strings must be strings no longer than the longest observed,
//     integers integers within the observed range;
//   - any other argument (floats, objects, lists, mixed types) is allowed
//     with any value, and the evidence comment says so.
//
// Token exchanges (token.minted) become one rule per audience listing the
// scopes observed with it; tasks (task.opened) one rule per purpose, with a
// budget of the most calls a closed task of that purpose made (task.closed)
// times the headroom, when any closed.

// mcpKey is one rule of MCP calls.
type mcpKey struct{ server, kind, name string }

type mcpAcc struct {
	ev      evidence
	rate    rateAcc
	argsRec int64 // calls whose arguments were recorded and decode
	args    map[string]*argAcc
	tooMany bool // more argument names than maxArgNames
}

type argAcc struct {
	present int64
	values  map[string]struct{} // CEL literals; nil once more than MaxValues
	anyKind bool                // a value that cannot be enumerated was seen
	strs    int64               // string values seen
	ints    int64               // integer values seen
	paths   bool                // every value so far is an absolute path without ".."
	prefix  string              // their longest common directory, with trailing "/"
	maxLen  int                 // longest string value (bytes)
	minInt  int64
	maxInt  int64
}

// maxArgNames bounds the argument names tracked per tool.
const maxArgNames = 64

// rateAcc tracks the busiest sliding minute.
type rateAcc struct {
	recent []int64
	peak   int
}

func (r *rateAcc) observe(t int64) {
	if n := len(r.recent); n > 0 && t < r.recent[n-1] {
		t = r.recent[n-1]
	}
	cut := t - int64(time.Minute)
	i := 0
	for i < len(r.recent) && r.recent[i] <= cut {
		i++
	}
	if i > 0 {
		r.recent = append(r.recent[:0], r.recent[i:]...)
	}
	r.recent = append(r.recent, t)
	r.peak = max(r.peak, len(r.recent))
}

// addMCP learns an allowed MCP call.
func (l *Learner) addMCP(id *identity, a *Access) {
	k := mcpKey{server: a.Service}
	switch {
	case a.Tool != "":
		k.kind, k.name = "tools", a.Tool
	case a.Resource != "":
		k.kind, k.name = "resources", a.Resource
	default:
		k.kind, k.name = "prompts", a.Prompt
	}
	m := id.mcp[k]
	if m == nil {
		m = &mcpAcc{args: map[string]*argAcc{}}
		id.mcp[k] = m
	}
	m.ev.add(a.Time, k.kind[:len(k.kind)-1]+" "+k.name)
	m.rate.observe(a.Time.UnixNano())
	args := a.ArgsMap()
	if args == nil {
		return
	}
	m.argsRec++
	if m.tooMany {
		return
	}
	for name, v := range args {
		arg := m.args[name]
		if arg == nil {
			if len(m.args) >= maxArgNames || !utf8.ValidString(name) {
				m.tooMany, m.args = true, nil
				return
			}
			arg = &argAcc{values: map[string]struct{}{}, paths: true}
			m.args[name] = arg
		}
		l.observeArg(arg, v)
	}
}

func (l *Learner) observeArg(arg *argAcc, v any) {
	arg.present++
	lit, ok := "", false
	switch x := v.(type) {
	case string:
		arg.strs++
		arg.maxLen = max(arg.maxLen, len(x))
		if len(x) <= l.o.MaxValueLen && utf8.ValidString(x) {
			lit, ok = strconv.Quote(x), true
		}
		if arg.paths {
			arg.paths, arg.prefix = commonDir(arg.prefix, x, arg.strs == 1)
		}
	case int64:
		lit, ok = strconv.FormatInt(x, 10), true
		if arg.ints == 0 || x < arg.minInt {
			arg.minInt = x
		}
		if arg.ints == 0 || x > arg.maxInt {
			arg.maxInt = x
		}
		arg.ints++
		arg.paths = false
	case bool:
		lit, ok = strconv.FormatBool(x), true
		arg.paths = false
	default:
		arg.paths = false
	}
	if !ok {
		arg.values = nil
		if _, str := v.(string); !str {
			arg.anyKind = true
		}
		return
	}
	if arg.values != nil {
		arg.values[lit] = struct{}{}
		if len(arg.values) > l.o.MaxValues {
			arg.values = nil
		}
	}
}

// commonDir folds the path p into the common directory prefix so far
// (first: p is the first value). ok is false once a value is not an
// absolute path, holds "..", or the prefix is down to "/".
func commonDir(prefix, p string, first bool) (ok bool, out string) {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") || !utf8.ValidString(p) || strings.ContainsRune(p, 0) {
		return false, ""
	}
	dir := p[:strings.LastIndexByte(p, '/')+1]
	if first {
		return dir != "/", dir
	}
	n := 0
	for n < len(prefix) && n < len(dir) && prefix[n] == dir[n] {
		n++
	}
	out = prefix[:n]
	out = out[:strings.LastIndexByte(out, '/')+1]
	return out != "/" && out != "", out
}

// condition returns the `when` condition for a rule of MCP calls and the
// notes for its evidence comment ("" when arguments are unconstrained).
func (m *mcpAcc) condition() (string, []string) {
	if m.argsRec == 0 {
		return "", []string{"arguments not recorded (MCPServer log_arguments is off): any arguments"}
	}
	if m.argsRec < m.ev.count {
		return "", []string{fmt.Sprintf("arguments recorded for %d of %d calls: any arguments", m.argsRec, m.ev.count)}
	}
	if m.tooMany {
		return "", []string{fmt.Sprintf("more than %d argument names: any arguments", maxArgNames)}
	}
	names := sortedKeys(m.args)
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	conds := []string{"mcp.args.all(k, k in [" + strings.Join(quoted, ", ") + "])"}
	const tooMany = "too many or too long values to enumerate"
	var notes []string
	for i, n := range names {
		arg, q := m.args[n], quoted[i]
		v := "mcp.args[" + q + "]"
		var c string
		switch {
		case arg.values != nil && !arg.anyKind:
			lits := make([]string, 0, len(arg.values))
			for lit := range arg.values {
				lits = append(lits, lit)
			}
			slices.Sort(lits)
			c = v + " in [" + strings.Join(lits, ", ") + "]"
		case arg.paths && arg.strs == arg.present && arg.prefix != "":
			c = fmt.Sprintf(`type(%s) == string && %s.startsWith(%s) && !%s.contains("..") && size(%s) <= %d`, v, v, strconv.Quote(arg.prefix), v, v, arg.maxLen)
			notes = append(notes, fmt.Sprintf("%s: %s, paths under %s of at most %d bytes", n, tooMany, arg.prefix, arg.maxLen))
		case arg.strs == arg.present:
			c = fmt.Sprintf("type(%s) == string && size(%s) <= %d", v, v, arg.maxLen)
			notes = append(notes, fmt.Sprintf("%s: %s, strings of at most %d bytes", n, tooMany, arg.maxLen))
		case arg.ints == arg.present:
			c = fmt.Sprintf("type(%s) == int && %s >= %d && %s <= %d", v, v, arg.minInt, v, arg.maxInt)
			notes = append(notes, fmt.Sprintf("%s: %s, integers from %d to %d", n, tooMany, arg.minInt, arg.maxInt))
		default:
			notes = append(notes, n+": any value (too many distinct values, long or non-scalar)")
			continue
		}
		if arg.present < m.argsRec {
			c = "(!(" + q + " in mcp.args) || " + c + ")"
		} else {
			c = "(" + c + ")"
		}
		conds = append(conds, c)
	}
	return strings.Join(conds, " && "), notes
}

// tokenAcc is the token exchanges of one identity for one audience.
type tokenAcc struct {
	ev     evidence
	rate   rateAcc
	scopes map[string]int64
}

// taskAcc is the tasks one identity opened for one purpose.
type taskAcc struct {
	ev       evidence
	closed   int64
	maxCalls int64
}

// AddToken learns an allowed token exchange of id for audience with
// scopes at t.
func (l *Learner) AddToken(t time.Time, spiffeID, audience string, scopes []string) {
	if spiffeID == "" || audience == "" || !utf8.ValidString(audience) {
		return
	}
	l.events++
	id := l.identity(spiffeID)
	id.ev.add(t, "token for "+audience)
	k := id.tokens[audience]
	if k == nil {
		k = &tokenAcc{scopes: map[string]int64{}}
		id.tokens[audience] = k
	}
	k.ev.add(t, "audience "+audience+" scopes "+strings.Join(scopes, " "))
	k.rate.observe(t.UnixNano())
	for _, s := range scopes {
		if s != "" && utf8.ValidString(s) {
			k.scopes[s]++
		}
	}
}

// AddTask learns a task id of spiffeID opened at t for purpose.
func (l *Learner) AddTask(t time.Time, spiffeID, task, purpose string) {
	if spiffeID == "" || purpose == "" || !utf8.ValidString(purpose) {
		return
	}
	l.events++
	id := l.identity(spiffeID)
	id.ev.add(t, "task for "+strconv.Quote(purpose))
	k := id.tasks[purpose]
	if k == nil {
		k = &taskAcc{}
		id.tasks[purpose] = k
	}
	k.ev.add(t, "purpose "+strconv.Quote(purpose))
	if task != "" {
		l.taskOf[task] = taskRef{id: spiffeID, purpose: purpose}
	}
}

// CloseTask learns that task, opened earlier, made calls.
func (l *Learner) CloseTask(task string, calls int64) {
	ref, ok := l.taskOf[task]
	if !ok {
		return
	}
	delete(l.taskOf, task)
	k := l.ids[ref.id].tasks[ref.purpose]
	k.closed++
	k.maxCalls = max(k.maxCalls, calls)
}

type taskRef struct{ id, purpose string }

// budget is the per-task call budget for a purpose whose closed tasks made
// at most maxCalls calls.
func (l *Learner) budget(maxCalls int64) int64 {
	return max(1, int64(math.Ceil(float64(maxCalls)*l.o.Headroom)))
}
