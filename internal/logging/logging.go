// Package logging builds the process's zap logger and the adapter asynq
// logs through, so every line of a worker shares one format.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error") in
// format ("json" or "console") writing to w (os.Stderr when nil).
func New(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if format == "console" {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	} else {
		encoder = zapcore.NewJSONEncoder(enc)
	}
	if w == nil {
		w = os.Stderr
	}
	core := zapcore.NewCore(encoder, zapcore.AddSync(w), lvl)
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)), nil
}

// Asynq adapts a zap logger to asynq.Logger. The caller is dropped because
// asynq's own wrappers add a varying number of frames.
func Asynq(l *zap.Logger) *AsynqLogger {
	return &AsynqLogger{l.Named("asynq").WithOptions(zap.WithCaller(false), zap.AddStacktrace(zapcore.FatalLevel)).Sugar()}
}

// AsynqLogger is asynq's logger without asynq's per-task archive line: the
// worker's ErrorHandler logs each archived task once, with its class and
// message, and asynq's "Retry exhausted for task id=…" says retries were
// used up even after a single attempt of a permanent error.
type AsynqLogger struct{ *zap.SugaredLogger }

// Warn drops asynq's "Retry exhausted" line and passes everything else.
func (l *AsynqLogger) Warn(args ...any) {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok && strings.HasPrefix(s, "Retry exhausted for task") {
			return
		}
	}
	l.SugaredLogger.Warn(args...)
}
