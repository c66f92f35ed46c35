package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/hibiken/asynq"

	"retropub/jobs"
)

// line is one output line. Field order is the order operators read.
type line struct {
	Event     int             `json:"event,omitempty"`
	EventID   string          `json:"event_id,omitempty"`
	TaskID    string          `json:"task_id,omitempty"`
	State     string          `json:"state"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Rerun     bool            `json:"rerun,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

type lineWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newLineWriter(w io.Writer) *lineWriter {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &lineWriter{w: bw, enc: enc}
}

func (lw *lineWriter) write(l *line) { _ = lw.enc.Encode(l) }
func (lw *lineWriter) flush()        { _ = lw.w.Flush() }

// event is one validated input event, ready to enqueue. Only the task
// (holding the compacted payload) is kept, not the decoded struct, so a
// large batch costs little more memory than its input.
type event struct {
	n       int // 1-based position in the input
	eventID string
	taskID  string
	task    *asynq.Task
	first   int // index of an earlier event with the same TaskID, or -1

	res *jobs.EnqueueResult
	err error
	// Set with err: the output state, message and exit status.
	failState, failMsg string
	failCode           int
}

func runPublish(ctx context.Context, e *env, args []string) int {
	fs := flag.NewFlagSet("enqueue publish", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	file := fs.String("file", "", "read events from `F` (JSON Lines or concatenated JSON objects); - reads stdin")
	var wait waitFlag
	fs.Var(&wait, "wait", "wait for every task to finish: --wait (60s) or --wait=DUR; DUR bounds the whole command")
	rerun := fs.Bool("rerun-archived", false, "run archived duplicates again instead of reporting them")
	if code, ok := parseFlags(e, fs, "publish", "--file F|- [--wait[=DUR]] [--rerun-archived]", args); !ok {
		return code
	}
	if *file == "" {
		e.errorf("publish: --file is required (a path, or - for stdin)")
		return exitInvalid
	}
	if wait.set {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait.d)
		defer cancel()
	}

	in := e.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			e.errorf("publish: %v", err)
			return exitInvalid
		}
		defer f.Close()
		in = f
	}
	out := newLineWriter(e.stdout)
	defer out.flush()

	events, code := readEvents(e, in, out)
	if code != exitOK {
		return code
	}
	if len(events) == 0 {
		e.errorf("publish: no events in the input")
		return exitOK
	}

	d, code := loadAndConnect(ctx, e)
	if code != exitOK {
		return code
	}
	defer d.Close()

	o := jobs.EnqueueOptions{RerunArchived: *rerun}
	// Without --wait, lines stream out batch by batch; with it, they are
	// printed at the end, once every task has finished.
	batch := 1024
	if wait.set {
		batch = len(events)
	}
	code = exitOK
	for start := 0; start < len(events); start += batch {
		chunk := events[start:min(start+batch, len(events))]
		enqueueBatch(ctx, d, chunk, events, o)
		if !wait.set {
			for _, ev := range chunk {
				l, c := enqueuedLine(ev)
				out.write(l)
				code = max(code, c)
			}
			out.flush()
		}
	}
	if !wait.set {
		return code
	}
	return waitAndReport(ctx, d, events, out)
}

// readEvents splits the input into JSON values and validates each. It
// reads everything before enqueueing anything: one bad event stops the
// whole batch, so a fixed file can simply be sent again. Every problem of
// every event is reported: text that is not JSON is one invalid event, and
// reading resumes at the next line that starts with "{".
func readEvents(e *env, in io.Reader, out *lineWriter) ([]*event, int) {
	var (
		capped *eventCap
		dec    *json.Decoder
		base   int64 // input offset where dec started
	)
	decodeFrom := func(r io.Reader) {
		capped = &eventCap{r: r, limit: jobs.MaxPayloadBytes}
		dec = json.NewDecoder(capped)
		capped.start = dec.InputOffset
	}
	decodeFrom(bufio.NewReaderSize(in, 256<<10))
	var (
		events  []*event
		byID    = map[string]int{}
		invalid int
		raw     json.RawMessage // reused: the task keeps its own compacted copy
	)
	for n := 1; ; n++ {
		err := dec.Decode(&raw)
		if err == io.EOF {
			break
		}
		if errors.Is(err, errEventTooLarge) {
			msg := fmt.Sprintf("event %d: more than %d MiB, the payload limit (send large attachments by url); stopped reading there", n, jobs.MaxPayloadBytes>>20)
			e.errorf("publish: %s; nothing was enqueued", msg)
			out.write(&line{State: "invalid", Error: msg})
			return nil, exitInvalid
		}
		if err != nil {
			invalid++
			at := base + dec.InputOffset()
			rest, skipped, more := skipToNextObject(io.MultiReader(dec.Buffered(), capped.r))
			msg := fmt.Sprintf("event %d: not JSON: %s", n, readError(err, base))
			if more {
				msg += "; reading on from the next line that starts with {"
			}
			out.write(&line{Event: n, State: "invalid", Error: msg})
			if !more {
				break
			}
			base = at + skipped
			decodeFrom(rest)
			continue
		}
		p, err := jobs.DecodePublishPayload(raw)
		if err != nil {
			invalid++
			id := eventIDOf(raw)
			where := fmt.Sprintf("event %d", n)
			if id != "" {
				where += fmt.Sprintf(" (event_id %s)", id)
			}
			out.write(&line{Event: n, EventID: id, State: "invalid", Error: where + ": " + err.Error()})
			continue
		}
		if invalid > 0 {
			continue // only the errors matter from here on
		}
		task, err := jobs.NewPublishTaskFromJSON(p, raw)
		if err != nil { // cannot happen for bytes that just decoded
			invalid++
			out.write(&line{Event: n, EventID: p.EventID, State: "invalid", Error: fmt.Sprintf("event %d: %v", n, err)})
			continue
		}
		ev := &event{n: n, eventID: p.EventID, taskID: p.TaskID(), task: task, first: -1}
		// The same revision twice in one input is one task; decide that
		// here rather than let concurrent enqueues race for it.
		if j, ok := byID[ev.taskID]; ok {
			ev.first, ev.task = j, nil
		} else {
			byID[ev.taskID] = len(events)
		}
		events = append(events, ev)
	}
	if invalid > 0 {
		e.errorf("publish: %d invalid event(s); nothing was enqueued", invalid)
		return nil, exitInvalid
	}
	return events, exitOK
}

// errEventTooLarge: one event passed the payload limit while it was read.
var errEventTooLarge = errors.New("event larger than the payload limit")

// eventCap hands the decoder at most limit+1 bytes past the end of the
// last event it decoded (start: the decoder's InputOffset), so an oversized
// event fails once it passes the limit instead of being buffered whole (a
// 50 MB event took 181 MB before its size was checked).
type eventCap struct {
	r     io.Reader
	start func() int64
	read  int64 // bytes handed to the decoder
	limit int64
}

func (c *eventCap) Read(p []byte) (int, error) {
	room := c.limit + 1 - (c.read - c.start())
	if room <= 0 {
		return 0, errEventTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// readError says what is wrong with the text a decoder started reading at
// input offset base.
func readError(err error, base int64) string {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%s (near byte %d)", syn.Error(), base+syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON at the end of the input"
	}
	return err.Error()
}

// skipToNextObject drops r's text up to the next line that starts with "{"
// (JSON Lines, or pretty-printed objects that start in column 0): the rest
// of the line with bad text, then every line that does not start an
// object. It returns the reader from there, how many bytes it dropped, and
// false when the input ended first.
func skipToNextObject(r io.Reader) (rest *bufio.Reader, skipped int64, more bool) {
	br := bufio.NewReaderSize(r, 64<<10)
	// Whitespace before the bad text belongs to the event before it.
	for {
		b, err := br.ReadByte()
		if err != nil {
			return br, skipped, false
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			_ = br.UnreadByte()
			break
		}
		skipped++
	}
	for {
		// Drop one line, however long, without holding it.
		for {
			chunk, err := br.ReadSlice('\n')
			skipped += int64(len(chunk))
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				return br, skipped, false
			}
		}
		next, err := br.Peek(1)
		if err != nil {
			return br, skipped, false
		}
		if next[0] == '{' {
			return br, skipped, true
		}
	}
}

// eventIDOf digs event_id out of an invalid event, for its output line.
func eventIDOf(raw []byte) string {
	var v struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.EventID
}

// enqueueBatch enqueues chunk concurrently. The first Redis failure stops
// the rest (each would wait out its own timeouts); re-running the command
// is safe because enqueueing is idempotent.
func enqueueBatch(ctx context.Context, d *deps, chunk, all []*event, o jobs.EnqueueOptions) {
	bctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	parallel(len(chunk), func(i int) {
		ev := chunk[i]
		if ev.first >= 0 {
			return
		}
		if bctx.Err() == nil {
			ev.res, ev.err = jobs.EnqueueIdempotent(bctx, d.client, d.insp, ev.task, jobs.PublishQueue, ev.taskID, o)
			ev.task = nil // let the payload go
			if ev.err == nil {
				return
			}
		}
		// Classify now: by the time lines are printed the --wait deadline
		// may have passed for reasons unrelated to this failure.
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			ev.failure("timeout", "not enqueued before the --wait deadline", exitFailed)
		case ctx.Err() != nil:
			ev.failure("error", "not enqueued: interrupted", exitFailed)
		case ev.err == nil || errors.Is(ev.err, context.Canceled):
			ev.failure("error", "not enqueued after an earlier failure: "+context.Cause(bctx).Error(), exitRedis)
		default:
			ev.failure("error", ev.err.Error(), exitRedis)
			stop(ev.err)
		}
	})
	// Repeats within the input share the first event's outcome.
	for _, ev := range chunk {
		if ev.first < 0 {
			continue
		}
		f := all[ev.first]
		ev.err, ev.failState, ev.failMsg, ev.failCode = f.err, f.failState, f.failMsg, f.failCode
		if f.res != nil {
			r := *f.res
			r.Duplicate, r.Rerun = true, false
			ev.res = &r
		}
	}
}

func (ev *event) failure(state, msg string, code int) {
	if ev.err == nil {
		ev.err = errors.New(msg)
	}
	ev.failState, ev.failMsg, ev.failCode = state, msg, code
}

// enqueuedLine is an event's output line after enqueueing, and its exit status.
func enqueuedLine(ev *event) (*line, int) {
	l := &line{Event: ev.n, EventID: ev.eventID, TaskID: ev.taskID}
	if ev.err != nil {
		l.State, l.Error = ev.failState, ev.failMsg
		return l, ev.failCode
	}
	l.State, l.Duplicate, l.Rerun = ev.res.State, ev.res.Duplicate, ev.res.Rerun
	if ev.res.State == "archived" {
		// An archived duplicate was not accepted: say why it failed.
		l.Error = ev.res.LastError
		if l.Error == "" {
			l.Error = "archived (no error recorded); --rerun-archived runs it again"
		}
		return l, exitFailed
	}
	return l, exitOK
}

// waitAndReport waits for every enqueued task, then prints all lines in
// input order.
func waitAndReport(ctx context.Context, d *deps, events []*event, out *lineWriter) int {
	targets := make([]*waitTarget, len(events))
	var list []*waitTarget
	for i, ev := range events {
		if ev.err != nil || ev.first >= 0 {
			continue
		}
		targets[i] = &waitTarget{queue: ev.res.Queue, id: ev.taskID}
		list = append(list, targets[i])
	}
	waitFor(ctx, d.insp, list)

	code := exitOK
	for i, ev := range events {
		l, c := enqueuedLine(ev)
		if ev.err == nil {
			t := targets[i]
			if ev.first >= 0 {
				t = targets[ev.first]
			}
			l.State, l.Result, l.Error = t.state, t.result, t.err
			c = exitOK
			if t.state != "completed" {
				c = exitFailed
			}
		}
		out.write(l)
		code = max(code, c)
	}
	return code
}
