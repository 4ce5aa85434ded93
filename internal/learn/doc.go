// Package learn turns recorded traffic into least-agency policy and checks
// a candidate policy against that traffic before it is enforced.
//
// [Scan] streams the access events (audit.AccessAllowed and
// audit.AccessDenied) of an audit log's records in index order, a page at a
// time, so memory does not grow with the log. A [Learner] fed with those
// accesses keeps, per identity, one accumulator per (service, path
// pattern): the methods seen, counts, first and last time, an example and
// the peak calls in any sliding minute; [Learner.Files] renders one
// AccessPolicy YAML document per identity that allows what was observed
// and nothing more. Path segments that look like values (numbers, UUIDs,
// dates, long hex strings; see [Generalizer]) become "*". Denied traffic is
// never learned; [Learner.Denied] lists it for review. The output is a pure
// function of the events read: the same log gives byte-identical files,
// whose [Digest] `writ apply --expect-digest` checks.
//
// [Replay] re-decides every recorded access with a candidate
// [policy.Snapshot], compiled exactly as the server compiles stored
// policies, and reports what would change: newly denied, newly allowed and
// approval newly required, per identity and deciding rule, with counts and
// examples.
package learn
