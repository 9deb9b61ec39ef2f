package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// cutter is a TCP relay to the server whose connections the test can cut
// at once, as a failing network does: reset, with no WebSocket close frame.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

// cut resets every connection relayed so far.
func (c *cutter) cut() {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for _, conn := range conns {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, not a clean close
		}
		conn.Close()
	}
}

// recordStates makes the page keep every call state it shows in
// window.__states.
const recordStates = `(() => {
  window.__states = [];
  const el = document.querySelector('#call-state');
  new MutationObserver(() => window.__states.push(el.dataset.state)).observe(el, { attributes: true, attributeFilter: ['data-state'] });
  window.__sameDocument = true;
})()`

func TestBrowserRecoversAfterTheSocketDrops(t *testing.T) {
	chromium := chromiumPath(t)
	ts := startServer(t, map[string]string{"BEDSIDE_LOG_LEVEL": "debug"})
	link := bookFirstFree(t, ts)
	// The patient reaches the server through a relay the test can cut.
	relay := newCutter(t, strings.TrimPrefix(ts.URL, "http://"))
	link = strings.Replace(link, ts.URL, "http://"+relay.ln.Addr().String(), 1)

	patient := newBrowser(t, chromium)
	watch := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordPeerConnections})
		return err
	})
	if err := chromedp.Do(patient, watch, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	visit, err := chromedp.Run(patient, chromedp.Evaluate[int](`Number(location.pathname.split('/').pop())`))
	if err != nil || visit == 0 {
		t.Fatalf("join link landed on no visit: %v", err)
	}
	waitJS(t, patient, "join button enabled", `!document.querySelector('#join-button').disabled`, 30*time.Second)
	if err := chromedp.Do(patient, chromedp.Click(chromedp.CSS("#join-button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "patient waiting", `document.querySelector('#call-state').dataset.state === 'waiting'`, 30*time.Second)

	doctor := newBrowser(t, chromium)
	err = chromedp.Do(doctor,
		chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS("#email"), "dr.okafor@demo.bedside.test"),
		chromedp.SendKeys(chromedp.CSS("#password"), ts.demoPassword(t, "dr.okafor@demo.bedside.test")),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#visits")),
		chromedp.Navigate(fmt.Sprintf("%s/consult/%d", ts.URL, visit)),
	)
	if err == nil {
		waitJS(t, doctor, "start button enabled", `!document.querySelector('#start-button').disabled`, 30*time.Second)
		err = chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#start-button")))
	}
	if err != nil {
		t.Fatalf("physician: %v", err)
	}
	waitJS(t, doctor, "patient in the lobby", `!!document.querySelector('#lobby button.admit')`, 30*time.Second)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#lobby button.admit"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, patient, "patient sees the physician's video", videoPlaying, 45*time.Second)
	waitJS(t, doctor, "physician sees the patient's video", videoPlaying, 45*time.Second)

	// The patient's network drops the signaling socket.
	if _, err := chromedp.Run(patient, chromedp.Evaluate[bool](recordStates+` || true`)); err != nil {
		t.Fatal(err)
	}
	relay.cut()
	waitJS(t, patient, "the page said it was reconnecting", `window.__states.includes('reconnecting')`, 30*time.Second)
	waitJS(t, patient, "the page is back in the call", `window.__states.at(-1) === 'in-call'`, 30*time.Second)
	waitJS(t, patient, "no reload", `window.__sameDocument === true`, time.Second)
	waitJS(t, patient, "patient still sees the physician's video", videoPlaying, 30*time.Second)
	waitJS(t, doctor, "physician still sees the patient's video", videoPlaying, 30*time.Second)
	if !strings.Contains(ts.out.String(), "participant resumed") {
		t.Fatalf("the server did not resume the patient; its log:\n%s", ts.out.String())
	}
	// The physician never saw the patient leave.
	if strings.Contains(ts.out.String(), "participant disconnected") {
		t.Fatal("the patient left the call during the drop")
	}
}
