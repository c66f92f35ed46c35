package test

import (
	"context"
	"errors"
	"testing"
	"time"

	"retropub/confluence"
	"retropub/gate"
)

// Issue 17, must-show 3: a gate lease held by a worker process that is
// SIGKILLed is not lost for longer than its lease time. The worker holds
// the instance's one in-flight slot (its first write parked at the fake);
// after the kill, another process's gate on the same Redis gets a
// slot once the dead worker's reservation has expired: within 4 lease
// times (1 s), where a per-request slot used to stay taken for the request
// timeout plus 5 s.
func TestLeaseOfAKilledWorkerIsFreeAfterItsLeaseTime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker process and kills it")
	}
	e := newEnv(t) // serial: a second and a half; every parallel slot is taken
	held := e.fake.HoldNext("POST", nil)
	defer held.Release(false)
	ws := e.startWorkers(1, "CONFLUENCE_MAX_INFLIGHT=1", "CONFLUENCE_RATE=20", "INTEGRATION_MAX_ACTIVE=0")
	e.enqueueMany("acme-cloud", "lease", 1)
	select {
	case <-held.Arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker's first write never reached the fake")
	}

	other := gate.New(e.rdb, gate.Config{MaxInflight: 1, MaxWait: time.Millisecond}, nil)
	defer other.Close()
	inst := "cloud:" + e.fake.CloudID()
	admit := func() error {
		done, err := other.Admit(context.Background(), inst, "GET", "GET /wiki/api/v2/spaces")
		if err == nil {
			done(confluence.Outcome{StatusCode: 200})
		}
		return err
	}
	var de *gate.DeferError
	if err := admit(); !errors.As(err, &de) || de.Why != gate.RefusedInflight {
		t.Fatalf("while the worker holds the slot, another gate got: %v (want an in-flight refusal)", err)
	}

	if err := ws[0].cmd.Process.Kill(); err != nil { // SIGKILL: no hand-back
		t.Fatal(err)
	}
	<-ws[0].done
	killed := time.Now()
	for {
		err := admit()
		if err == nil {
			break
		}
		if !errors.As(err, &de) || de.Why != gate.RefusedInflight {
			t.Fatalf("after the kill: %v", err)
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatal("the dead worker's in-flight slot never came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	free := time.Since(killed)
	t.Logf("slot free %s after the SIGKILL", free.Round(time.Millisecond))
	// The reservation was renewed at most a half lease before the kill with
	// a 1 s lifetime; 500 ms covers a loaded host's scheduling.
	if free > 1500*time.Millisecond {
		t.Fatalf("the dead worker's slot came back %s after the kill; its lease was 1 s", free)
	}
}
