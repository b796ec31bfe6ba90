package repository

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var documented = regexp.MustCompile("(?m)^- `([a-z0-9_]+)` \\(")

// Every option and every output appears in the rendered page
// (.web-docs/components/data-source/repository/README.md, from make generate),
// and the page lists nothing else.
func TestDocumented(t *testing.T) {
	page, err := os.ReadFile("../../.web-docs/components/data-source/repository/README.md")
	if err != nil {
		t.Fatalf("%v (run make generate)", err)
	}
	var got []string
	for _, m := range documented.FindAllSubmatch(page, -1) {
		got = append(got, string(m[1]))
	}
	var want []string
	d := new(Datasource)
	for k := range d.ConfigSpec() {
		want = append(want, k)
	}
	for k := range d.OutputSpec() {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("documented: %s\nspecs:      %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}
