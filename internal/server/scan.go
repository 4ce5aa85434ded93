package server

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/writ-dev/writ/internal/api"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/audit"
	"github.com/writ-dev/writ/internal/graph"
	"github.com/writ-dev/writ/internal/posture"
	"github.com/writ-dev/writ/internal/proxy"
	"github.com/writ-dev/writ/internal/resource"
	"github.com/writ-dev/writ/internal/scan"
	"github.com/writ-dev/writ/internal/secrets"
	"github.com/writ-dev/writ/internal/store"
)

// scans joins `writ scan --report` findings with what the deployment
// knows (#15): brokered values, Services, the sensor's inventory and the
// lineage graph, and records them in the inventory, where posture and the
// lineage graph read them.
type scans struct{ s *Server }

var _ api.Scans = scans{}

// Bounds of a scan report.
const (
	maxScanFindings = 10000
	maxScanText     = 4096
	// scanLineageWindow is how far back the identities using a service
	// are read from the lineage graph.
	scanLineageWindow = tierWindow
)

func (sc scans) key() ([]byte, error) {
	if sc.s.disc.fpKey == nil {
		return nil, apitypes.Errorf(http.StatusServiceUnavailable, apitypes.CodeInternal, "the fingerprint key is not ready")
	}
	return sc.s.disc.fpKey, nil
}

func (sc scans) FingerprintKey(ctx context.Context) (apitypes.FingerprintKey, error) {
	k, err := sc.key()
	if err != nil {
		return apitypes.FingerprintKey{}, err
	}
	return apitypes.FingerprintKey{Key: base64.StdEncoding.EncodeToString(k), KeyID: secrets.KeyID(k)}, nil
}

// checkScanReport refuses a report writ cannot join or store safely.
func checkScanReport(req *apitypes.ScanReportRequest, keyID string) error {
	bad := func(format string, args ...any) error {
		return apitypes.Errorf(http.StatusBadRequest, apitypes.CodeBadRequest, format, args...)
	}
	switch {
	case req.Target == "" || len(req.Target) > 256 || !utf8.ValidString(req.Target) || strings.ContainsAny(req.Target, "\x00\n"):
		return bad("target %q: name the repository or directory scanned (1 to 256 characters, one line)", clipText(req.Target))
	case req.KeyID != keyID:
		return apitypes.Errorf(http.StatusConflict, apitypes.CodeConflict,
			"the findings are fingerprinted under key %q, not this deployment's %s: scan with `writ scan --report` (which fetches the key) so they join with brokered and discovered credentials", clipText(req.KeyID), keyID)
	case len(req.Findings) > maxScanFindings:
		return bad("%d findings; at most %d per report", len(req.Findings), maxScanFindings)
	}
	for i := range req.Findings {
		f := &req.Findings[i]
		if _, err := hex.DecodeString(f.Fingerprint); err != nil || len(f.Fingerprint) != 64 {
			return bad("finding %d: fingerprint %q is not a hex HMAC-SHA256", i, clipText(f.Fingerprint))
		}
		for _, s := range append([]string{f.RuleID, f.Description, f.Path, f.Commit, f.Author, f.LastCommit, string(f.Severity), string(f.Kind)}, f.Hosts...) {
			if len(s) > maxScanText || !utf8.ValidString(s) {
				return bad("finding %d: a field is over %d bytes or not UTF-8", i, maxScanText)
			}
		}
		if len(f.Hosts) > 16 {
			return bad("finding %d: %d hosts; at most 16", i, len(f.Hosts))
		}
		if v := f.Validation; v != nil {
			switch v.State {
			case scan.Valid, scan.Invalid, scan.Unknown:
			default:
				return bad("finding %d: validation state %q: valid, invalid or unknown", i, clipText(string(v.State)))
			}
			if len(v.Reason) > maxScanText || len(v.Provider) > maxScanText || !utf8.ValidString(v.Reason) || !utf8.ValidString(v.Provider) {
				return bad("finding %d: the validation's reason or provider is over %d bytes or not UTF-8", i, maxScanText)
			}
		}
	}
	return nil
}

func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// knowledge gathers what findings are joined with.
func (sc scans) knowledge(ctx context.Context, key []byte) (*scan.Knowledge, error) {
	s := sc.s
	k := &scan.Knowledge{Brokered: map[string][]string{}, Discovered: map[string][]scan.DiscoveredRef{}, UsedBy: map[string][]string{},
		CrownJewels: map[string]bool{}, Now: s.now()}
	det, err := secrets.New(secrets.Config{FingerprintKey: key})
	if err != nil {
		return nil, err
	}
	infos, err := s.px.broker.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, in := range infos {
		_, v, err := s.px.broker.Get(ctx, in.Name)
		if err != nil {
			return nil, fmt.Errorf("fingerprint broker credential %s: %w", in.Name, err)
		}
		fp := det.Fingerprint([]byte(v.Reveal()))
		k.Brokered[fp] = append(k.Brokered[fp], in.Name)
	}
	rs, err := s.db.ListResources(ctx, resource.KindService)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		svc, err := proxy.CompileService(r)
		if err != nil {
			continue
		}
		cred := ""
		if svc.Spec.Credential != nil {
			cred = svc.Spec.Credential.Name
		}
		k.Services = append(k.Services, scan.ServiceRef{Name: svc.Name, Host: svc.Upstream.Hostname(), Credential: cred})
		if svc.Host != "" {
			k.Services = append(k.Services, scan.ServiceRef{Name: svc.Name, Host: svc.Host, Credential: cred})
		}
	}
	cj, err := s.crownJewels(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range cj {
		k.CrownJewels[n] = true
	}
	if _, err := s.lineage.Builder.Sync(ctx); err != nil {
		return nil, err
	}
	facts, err := s.db.ListLineage(ctx, store.LineageFilter{Since: s.now().Add(-scanLineageWindow)})
	if err != nil {
		return nil, err
	}
	for _, f := range facts {
		if f.TargetKind == store.TargetMCPServer || f.Allowed == 0 {
			continue
		}
		k.UsedBy[f.Target] = append(k.UsedBy[f.Target], f.Identity)
	}
	inv, err := s.db.ListInventory(ctx, store.InventoryFilter{})
	if err != nil {
		return nil, err
	}
	holders := map[string][]string{} // host/credential id → holders
	for _, it := range inv {
		switch it.Kind {
		case store.InventoryAgent, store.InventoryMCPServer, store.InventoryProcess:
			var p struct {
				Credentials []string `json:"credentials"`
			}
			json.Unmarshal(it.Data, &p)
			who := it.Identity
			if who == "" {
				who = it.Host + "/" + it.Name
			}
			for _, c := range p.Credentials {
				holders[it.Host+"/"+c] = append(holders[it.Host+"/"+c], who)
			}
		}
	}
	for _, it := range inv {
		if it.Kind != store.InventoryCredential || strings.HasPrefix(it.Host, scanHostPrefix) {
			continue
		}
		var c struct{ ID, Fingerprint string }
		if json.Unmarshal(it.Data, &c) != nil || c.Fingerprint == "" {
			continue
		}
		name := graph.DiscoveredCredentialName(it.Host, c.ID)
		k.Discovered[c.Fingerprint] = append(k.Discovered[c.Fingerprint], scan.DiscoveredRef{Credential: name, Holders: holders[name]})
	}
	return k, nil
}

// scanHostPrefix starts the inventory host of a scan's findings:
// "scan:" and the target.
const scanHostPrefix = posture.ScanHostPrefix

// scanItem is the inventory record of a ranked finding: the fields the
// sensor's credential records have (so the lineage graph and posture read
// it as a credential node), the scan's place and the blast radius.
type scanItem struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	Source      string       `json:"source"`
	Path        string       `json:"path"`
	Fingerprint string       `json:"fingerprint"`
	Opens       []string     `json:"opens"`
	Severity    string       `json:"severity"`
	Commit      string       `json:"commit,omitempty"`
	AtHEAD      *bool        `json:"at_head,omitempty"`
	Blast       scan.Blast   `json:"blast_radius"`
	Finding     scan.Finding `json:"finding"`
}

func (sc scans) ReportScan(ctx context.Context, actor string, req apitypes.ScanReportRequest) (apitypes.ScanReportResponse, error) {
	s := sc.s
	key, err := sc.key()
	if err != nil {
		return apitypes.ScanReportResponse{}, err
	}
	if err := checkScanReport(&req, secrets.KeyID(key)); err != nil {
		return apitypes.ScanReportResponse{}, err
	}
	k, err := sc.knowledge(ctx, key)
	if err != nil {
		return apitypes.ScanReportResponse{}, err
	}
	ranked := scan.Rank(req.Findings, k)
	now := s.now()
	host := scanHostPrefix + req.Target
	items := make([]store.InventoryItem, 0, len(ranked))
	for i := range ranked {
		r := &ranked[i]
		place := r.Path + ":" + strconv.Itoa(r.Line)
		id := place + ":" + r.RuleID + ":" + r.Fingerprint[:16]
		data, err := json.Marshal(scanItem{ID: id, Kind: r.RuleID, Source: "scan", Path: place, Fingerprint: r.Fingerprint, Opens: r.Blast.Opens,
			Severity: string(r.Severity), Commit: r.Commit, AtHEAD: r.AtHEAD, Blast: r.Blast, Finding: r.Finding})
		if err != nil {
			return apitypes.ScanReportResponse{}, err
		}
		items = append(items, store.InventoryItem{Kind: store.InventoryCredential, Key: host + "/" + id, Host: host,
			Name: r.RuleID + " in " + place, Shadow: true, Data: data})
	}
	if err := s.db.RecordInventory(ctx, now, items); err != nil {
		return apitypes.ScanReportResponse{}, err
	}
	top := ""
	if len(ranked) > 0 {
		top = strconv.Itoa(ranked[0].Blast.Score)
	}
	if err := s.emit.Emit(ctx, audit.Event{Type: audit.ScanReported, Actor: actor, Target: host, Reason: "secret scan findings ranked by blast radius",
		Details: map[string]string{"findings": strconv.Itoa(len(ranked)), "top_score": top}}); err != nil {
		return apitypes.ScanReportResponse{}, errors.Join(errors.New("the findings were recorded but not audited"), err)
	}
	return apitypes.ScanReportResponse{Target: req.Target, Time: now, Findings: ranked}, nil
}

// Emitter returns the server's audit emitter: events sent to it are
// appended to the audit log as the server's own are (embedding, and tests
// that script a deployment's history).
func (s *Server) Emitter() audit.Emitter { return s.emit }
