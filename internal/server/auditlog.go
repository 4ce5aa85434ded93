package server

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/writ-dev/writ/internal/auditlog"
	"github.com/writ-dev/writ/internal/config"
	"golang.org/x/mod/sumdb/note"
)

// publishedCheckpointFile is where writ serve keeps the latest checkpoint
// its audit log signed, outside the store, so that a start on a log older
// than it (rolled back) is refused.
func publishedCheckpointFile(dataDir string) *auditlog.CheckpointFile {
	return &auditlog.CheckpointFile{Path: filepath.Join(dataDir, "audit.checkpoint")}
}

// auditWitnesses builds the audit log's witnesses from audit.witnesses in
// writ.yaml (validated by config).
func auditWitnesses(list []config.Witness) ([]auditlog.Witness, error) {
	var out []auditlog.Witness
	for i, c := range list {
		w := auditlog.Witness{Name: c.Name, Timeout: c.Timeout}
		switch {
		case c.File != "":
			w.Sender = auditlog.FileSender{Path: c.File}
		case c.URL != "":
			w.Sender = auditlog.HTTPSender{URL: c.URL}
		default:
			w.Sender = auditlog.CommandSender{Argv: c.Command}
		}
		if c.Key != "" {
			v, err := note.NewVerifier(c.Key)
			if err != nil {
				return nil, fmt.Errorf("audit.witnesses[%d].key: %v", i, err)
			}
			w.Key = v
		}
		out = append(out, w)
	}
	return out, nil
}

// witnessDeliveries counts deliveries of checkpoints to witnesses by
// outcome; a failing witness does not stop the log, so this (and the
// process log) is where it shows.
func witnessDeliveries() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "writ_audit_witness_deliveries_total",
		Help: "Checkpoints delivered to audit witnesses, by witness and result (ok or error).",
	}, []string{"witness", "result"})
}
