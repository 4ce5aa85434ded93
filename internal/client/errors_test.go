package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/writ-dev/writ/internal/client"
)

func TestTypedErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   error
		msg    string
	}{
		{400, `{"code":"bad_request","error":"selectors[0] \"x\": write type:key:value"}`, client.ErrInvalid, `selectors[0] "x": write type:key:value`},
		{413, `{"code":"bad_request","error":"request body is over 4194304 bytes"}`, client.ErrInvalid, "request body is over 4194304 bytes"},
		{401, `{"code":"unauthorized","error":"admin credential is wrong"}`, client.ErrUnauthorized, "admin credential is wrong"},
		{403, `{"code":"forbidden","error":"task tsk_1 denied: default deny"}`, client.ErrForbidden, "task tsk_1 denied: default deny"},
		{404, `{"code":"not_found","error":"entry \"x\": not found"}`, client.ErrNotFound, `entry "x": not found`},
		{409, `{"code":"conflict","error":"approval apr_1 is already approved"}`, client.ErrConflict, "approval apr_1 is already approved"},
		{503, `{"status":"store unavailable"}`, client.ErrUnavailable, "server answered 503 Service Unavailable"},
		{500, `not json`, client.ErrServer, "server answered 500 Internal Server Error"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			w.Write([]byte(tc.body))
		}))
		c, err := client.New(srv.URL, "t")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ListEntries(context.Background())
		srv.Close()
		if !errors.Is(err, tc.want) {
			t.Errorf("status %d: %v does not match %v", tc.status, err, tc.want)
		}
		for _, other := range []error{client.ErrInvalid, client.ErrUnauthorized, client.ErrForbidden, client.ErrNotFound, client.ErrConflict, client.ErrUnavailable, client.ErrServer} {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("status %d: %v also matches %v", tc.status, err, other)
			}
		}
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != tc.status || err.Error() != tc.msg {
			t.Errorf("status %d: error %q (%+v), want the server's message %q", tc.status, err, ce, tc.msg)
		}
	}
}
