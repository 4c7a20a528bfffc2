// promql-names parses PromQL expressions with Prometheus's own parser (the version kube-prometheus-stack
// runs, pinned in go.mod) and prints the metric names each one selects.
//
// Input on stdin: a JSON array of {"source": "...", "expr": "..."}. Output on stdout: a JSON array of
// {"source": "...", "metrics": ["..."], "matchers": {"<metric>": ["<label>", ...]}}: the label names
// each metric's selectors match on. An expression that does not parse, or a selector whose metric
// name is not fixed (no name, or a __name__ regex), is one line on stderr naming its source; the exit
// code is then 1, after every expression has been read.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type query struct {
	Source string `json:"source"`
	Expr   string `json:"expr"`
}

type result struct {
	Source   string              `json:"source"`
	Metrics  []string            `json:"metrics"`
	Matchers map[string][]string `json:"matchers"`
}

// names returns the sorted metric names the expression selects and the label names each one's
// selectors match on, or an error for a selector whose name cannot be known without a server.
func names(expr parser.Expr) ([]string, map[string][]string, error) {
	found := map[string]map[string]bool{}
	var bad error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok || bad != nil {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s has no fixed metric name", vs)
			return nil
		}
		if found[name] == nil {
			found[name] = map[string]bool{}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName {
				found[name][m.Name] = true
			}
		}
		return nil
	})
	if bad != nil {
		return nil, nil, bad
	}
	metrics := make([]string, 0, len(found))
	matchers := map[string][]string{}
	for n, labelSet := range found {
		metrics = append(metrics, n)
		matchers[n] = sorted(labelSet)
	}
	sort.Strings(metrics)
	return metrics, matchers, nil
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func main() {
	var queries []query
	if err := json.NewDecoder(os.Stdin).Decode(&queries); err != nil {
		fmt.Fprintf(os.Stderr, "promql-names: stdin: %v (want a JSON array of {source, expr})\n", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(queries))
	failed := false
	for _, q := range queries {
		expr, err := parser.ParseExpr(q.Expr)
		if err == nil {
			var metrics []string
			var matchers map[string][]string
			if metrics, matchers, err = names(expr); err == nil {
				results = append(results, result{Source: q.Source, Metrics: metrics, Matchers: matchers})
				continue
			}
		}
		fmt.Fprintf(os.Stderr, "promql-names: %s: %v\n", q.Source, err)
		failed = true
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintf(os.Stderr, "promql-names: stdout: %v\n", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}
