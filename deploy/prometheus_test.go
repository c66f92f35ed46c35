package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"retropub/internal/metrics"
)

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert, Record, Expr string
		}
	}
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

func alertNames(t *testing.T) []string {
	var names []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	return names
}

// dashboardQueries is every PromQL expression of the Grafana dashboard.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("grafana/retropub.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana/retropub.json: %v", err)
	}
	q := map[string]string{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q["panel "+p.Title+": "+tg.Expr] = tg.Expr
		}
	}
	if len(q) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return q
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	grafanaVars  = regexp.MustCompile(`\$\{?\w+\}?`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames are the series names a PromQL expression selects: every
// identifier that is not a function, an aggregation, a keyword, a label or
// a duration.
func metricNames(expr string) []string {
	s := grafanaVars.ReplaceAllString(expr, "")
	s = promStrings.ReplaceAllString(s, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, m := range promIdent.FindAllStringSubmatchIndex(s, -1) {
		if m[2] >= 0 { // followed by "(": a function or aggregation
			continue
		}
		if m[0] > 0 && (s[m[0]-1] >= '0' && s[m[0]-1] <= '9' || s[m[0]-1] == '.') {
			continue // the tail of a number or duration (1e3, 0.5)
		}
		if id := s[m[0]:m[1]]; !promKeywords[strings.ToLower(id)] {
			names = append(names, id)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (kind) (retropub_breakers{state=~"open|half_open"}) > 0`:                                  {"retropub_breakers"},
		`histogram_quantile(0.95, sum by (le, kind) (rate(retropub_x_bucket[5m])))`:                       {"retropub_x_bucket"},
		`sum(increase(a_total{k="v"}[1h])) > 0.8 * max(b) or absent(c)`:                                   {"a_total", "b", "c"},
		`process_resident_memory_bytes and on (instance, job) retropub_worker_ready`:                      {"process_resident_memory_bytes", "retropub_worker_ready"},
		`sum(x{status="410"}) or vector(0)`:                                                               {"x"},
		`max(a) - max(a offset 1h) > 1e3`:                                                                 {"a", "a"},
		`sum by (queue) (rate(retropub_typo_total{queue="{weird} by (x)",endpoint='a[1]'}[${interval}]))`: {"retropub_typo_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %q, want %q", expr, got, want)
		}
	}
}

// registeredNames is every series name a worker process exports: its
// registry, with asynq's queue collector reading a Redis that has a queue.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("report:publish", []byte(`{}`)), asynq.Queue("default")); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(asynq.NewInspectorFromRedisClient(rdb))
	names := map[string]bool{}
	for _, n := range m.Names() {
		names[n] = true
	}
	for _, must := range []string{"asynq_queue_latency_seconds", "retropub_publishes_total", "retropub_confluence_request_duration_seconds_bucket"} {
		if !names[must] {
			t.Fatalf("Names() lacks %s: %v", must, m.Names())
		}
	}
	return names
}

// Every series an alert rule or a dashboard panel queries is one the code
// registers: a renamed metric breaks this test, not the alert in silence.
func TestAlertsAndDashboardQueryRegisteredMetrics(t *testing.T) {
	registered := registeredNames(t)
	queries := dashboardQueries(t)
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			queries["rule "+r.Alert+r.Record] = r.Expr
		}
	}
	used := map[string]bool{}
	for where, expr := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !registered[n] {
				t.Errorf("%s: %s is not a series the worker registers", where, n)
			}
		}
	}
	// The kit covers what the brief asks to watch.
	for _, n := range []string{"retropub_worker_ready", "retropub_parked_reports", "retropub_webhook_deliveries_total",
		"retropub_points_budget_per_hour", "asynq_queue_latency_seconds", "retropub_breakers"} {
		if !used[n] {
			t.Errorf("no rule or panel uses %s", n)
		}
	}
}

// Every alert has a promtool test where it fires and one where it stays
// quiet, and a runbook paragraph in docs/operations.md.
func TestEveryAlertHasTestsAndRunbook(t *testing.T) {
	raw, err := os.ReadFile("prometheus/alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			Name          string
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(raw, &tf); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	alerts := alertNames(t)
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no test where it fires", a)
		}
		if !quiet[a] {
			t.Errorf("%s: no test where it stays quiet", a)
		}
		runbook := regexp.MustCompile(`(?m)^### ` + a + `\n\n\S.{80,}`)
		if !runbook.Match(ops) {
			t.Errorf("%s: no runbook paragraph under \"### %s\" in docs/operations.md", a, a)
		}
	}
	for a := range fires {
		if !slices.Contains(alerts, a) {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", a)
		}
	}
	for a := range quiet {
		if !slices.Contains(alerts, a) {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not define", a)
		}
	}
}

// promtool checks the rules and runs their unit tests (make test and
// .ci/run have it; the Debian package is prometheus).
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus; .ci/run does)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// The dashboard imports into Grafana as it is: unique panel ids, panels
// inside the 24-column grid, every query on the ${datasource} variable.
func TestGrafanaDashboardShape(t *testing.T) {
	raw, err := os.ReadFile("grafana/retropub.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string
		Templating struct{ List []struct{ Name, Type string } }
		Panels     []struct {
			ID         int
			Title      string
			Datasource struct{ UID string }
			GridPos    struct{ X, Y, W, H int }
			Targets    []struct{ RefID string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || len(dash.Templating.List) == 0 || dash.Templating.List[0].Name != "datasource" || dash.Templating.List[0].Type != "datasource" {
		t.Fatalf("uid %q, templating %+v: want a uid and a datasource variable", dash.UID, dash.Templating.List)
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
}
