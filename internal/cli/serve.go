package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/writ-dev/writ/internal/apitypes"
	"github.com/writ-dev/writ/internal/config"
	"github.com/writ-dev/writ/internal/keys"
	"github.com/writ-dev/writ/internal/server"
)

func newServeCmd(g *globals) *cobra.Command {
	var (
		configPath string
		role       string
		applyDirs  []string
		listen     string
		socket     string
		proxyAddr  string
		tlsAddr    string
		trustDom   string
		nodeServer string
		joinToken  string
		bundleFile string
		nodeName   string
		attestWith string
		tpmDevice  string
		tpmSWTPM   string
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run writ (control plane and node in one process by default)",
		Long: `Run writ. With no flags it runs everything in one process on an embedded
store in ./writ-data and prints the admin API address, the admin
credential file and the SPIFFE Workload API socket.

Configuration is read from --config (writ.yaml) if given; flags override
the file; unset values take their documented defaults.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Everything writ creates is its user's alone (0600 files,
			// 0700 directories), including files other code creates
			// beside ours, such as SQLite's -wal and -shm.
			syscall.Umask(0o077)
			var cfg config.Config
			if configPath != "" {
				var err error
				if cfg, err = config.Load(configPath); err != nil {
					return err
				}
			}
			flags := cmd.Flags()
			if flags.Changed("data-dir") || cfg.DataDir == "" {
				cfg.DataDir = g.dataDir
			}
			if flags.Changed("role") {
				cfg.Role = role
			}
			if flags.Changed("listen") {
				cfg.Server.Listen = listen
			}
			if flags.Changed("socket") {
				cfg.Workload.Socket = socket
			}
			if flags.Changed("proxy-listen") {
				cfg.Proxy.Listen = proxyAddr
			}
			if flags.Changed("tls-listen") {
				cfg.Server.TLSListen = tlsAddr
			}
			if flags.Changed("trust-domain") {
				cfg.TrustDomain = trustDom
			}
			if flags.Changed("server") {
				cfg.Node.Server = nodeServer
			}
			if flags.Changed("node-name") {
				cfg.NodeName = nodeName
			}
			if flags.Changed("server-bundle") {
				cfg.Node.ServerBundle = bundleFile
			}
			if flags.Changed("attest") {
				cfg.Node.Attest = attestWith
			}
			if flags.Changed("tpm-device") {
				cfg.Node.TPM = config.KeyTPM{Device: tpmDevice}
			}
			if flags.Changed("tpm-swtpm") {
				cfg.Node.TPM = config.KeyTPM{TCP: tpmSWTPM}
			}
			// A node runs the access proxy only when asked (its
			// address given in the file or by flag), not on the
			// default address.
			nodeProxy := cfg.Proxy.Listen
			cfg.Defaults()
			if abs, err := filepath.Abs(cfg.Workload.Socket); err == nil {
				cfg.Workload.Socket = abs
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			log := newLogger(g, cfg.Log)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Role == "node" {
				if len(applyDirs) > 0 {
					return fmt.Errorf("--apply: a node takes its documents from its server; apply them there")
				}
				if joinToken == "" {
					joinToken = os.Getenv("WRIT_JOIN_TOKEN")
				}
				return runNode(ctx, g, cfg, joinToken, nodeProxy, log)
			}
			srv, err := server.New(ctx, cfg, server.Options{Log: log, KEK: os.Getenv(keys.KEKEnv)})
			if err != nil {
				return err
			}
			for _, dir := range applyDirs {
				files, err := readApplyFiles(g, dir)
				if err == nil {
					var resp apitypes.ApplyResponse
					resp, err = srv.Apply(ctx, "serve --apply", apitypes.ApplyRequest{Files: files})
					for _, r := range resp.Results {
						fmt.Fprintf(g.stderr, "applied %s/%s: %s\n", r.Kind, r.Name, r.Action)
					}
				}
				if err != nil {
					srv.Close()
					return fmt.Errorf("--apply %s: %w", dir, err)
				}
			}
			printBanner(g, cfg, srv)
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "writ.yaml configuration file")
	f.StringVar(&role, "role", "all", "all: control plane and node in one process; server: the control plane nodes join; node: a node of --server")
	f.StringVar(&nodeServer, "server", "", "role node: the server's node API, https://HOST:PORT (its --tls-listen address)")
	f.StringVar(&joinToken, "join-token", "", "role node: a join token from writ node token create (or WRIT_JOIN_TOKEN); needed only to join")
	f.StringVar(&attestWith, "attest", "", "role node: how to join: join_token (with --join-token), x509pop (node.x509pop_cert) or tpm (--tpm-device or --tpm-swtpm)")
	f.StringVar(&tpmDevice, "tpm-device", "", "role node, --attest tpm: the TPM 2.0 device (node.tpm.device), normally /dev/tpmrm0")
	f.StringVar(&tpmSWTPM, "tpm-swtpm", "", "role node, --attest tpm: a swtpm simulator's command address host:port (node.tpm.tcp; its control port is the next one)")
	f.StringVar(&nodeName, "node-name", "", "this host's node name (node_name; role node: the name it joins as, default the host name)")
	f.StringVar(&bundleFile, "server-bundle", "", "role node: the trust bundle to trust the server with before joining (the server's /bundle document, or PEM)")
	f.StringArrayVar(&applyDirs, "apply", nil, "apply the YAML documents in this file or directory at start (repeatable)")
	f.StringVar(&listen, "listen", "", "HTTP listen address (default 127.0.0.1:8080)")
	f.StringVar(&socket, "socket", "", "Workload API socket path (default DATA_DIR/workload.sock)")
	f.StringVar(&tlsAddr, "tls-listen", "", "HTTPS listen address for mTLS callers, or \"off\" (default: port 8443 on the --listen host)")
	f.StringVar(&proxyAddr, "proxy-listen", "", "access proxy listen address, or \"off\" (default 127.0.0.1:8181)")
	f.StringVar(&trustDom, "trust-domain", "", "SPIFFE trust domain (default writ.local)")
	return cmd
}

func newLogger(g *globals, c config.Log) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level)) // validated already
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(g.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(g.stderr, opts))
}

func printBanner(g *globals, cfg config.Config, srv *server.Server) {
	w := g.stdout
	tokenFile, _ := filepath.Abs(srv.AdminTokenFile)
	fmt.Fprintf(w, "writ is running (trust domain %s, data in %s)\n\n", cfg.TrustDomain, cfg.DataDir)
	if srv.Role() == "server" {
		fmt.Fprintf(w, "  Role:                           server (control plane only: no Workload API, proxy or discovery on this host; nodes serve workloads)\n")
	}
	fmt.Fprintf(w, "  Admin API and bundle endpoint:  http://%s\n", srv.HTTPAddr())
	fmt.Fprintf(w, "  Admin credential file:          %s\n", tokenFile)
	fmt.Fprintf(w, "  Store:                          %s\n", srv.StoreDescription())
	fmt.Fprintf(w, "  Console:                        http://%s/ui/  (accounts: writ user add NAME --role admin --password-stdin)\n", srv.HTTPAddr())
	if a := srv.TLSAddr(); a != "" {
		fmt.Fprintf(w, "  HTTPS for mTLS agents:          https://%s  (tasks and /oauth2/token with an X.509-SVID)\n", a)
	}
	if a := srv.ProxyAddr(); a != "" {
		fmt.Fprintf(w, "  Access proxy:                   http://%s  (HTTP_PROXY / HTTPS_PROXY, or /svc/NAME/)\n", a)
	}
	if a := srv.ProxyTLSAddr(); a != "" {
		fmt.Fprintf(w, "  Access proxy (TLS, mTLS):       https://%s  (trust `writ proxy ca`)\n", a)
	}
	fmt.Fprintf(w, "\nIn another shell:\n\n")
	fmt.Fprintf(w, "  export WRIT_ADDR=http://%s\n", srv.HTTPAddr())
	fmt.Fprintf(w, "  export WRIT_TOKEN=$(cat %s)\n", tokenFile)
	if srv.SocketPath() == "" {
		// Role server: workloads are served by nodes.
		fmt.Fprintf(w, "  writ node token create   # then on each host: writ serve --role node --server https://%s --join-token ...\n\n", srv.TLSAddr())
		return
	}
	fmt.Fprintf(w, "  export SPIFFE_ENDPOINT_SOCKET=unix://%s\n", srv.SocketPath())
	fmt.Fprintf(w, "  writ entry create --spiffe-id spiffe://%s/agent/me --selector unix:uid:%d\n\n", cfg.TrustDomain, os.Getuid())
}
