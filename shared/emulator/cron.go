package emulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed standard 5-field expression (minute hour day-of-month
// month day-of-week) in a time zone, enough to fire the registry's timers
// locally on the same schedule the descriptors give the platforms.
type Cron struct {
	fields [5]map[int]bool
	loc    *time.Location
}

var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}

// ParseCron reads "*/15 8-18 * * 1-5" style expressions in tz.
func ParseCron(expr, tz string) (*Cron, error) {
	parts := strings.Fields(expr)
	if len(parts) != 5 {
		return nil, fmt.Errorf("cron %q: expected 5 fields (minute hour day month weekday)", expr)
	}
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			// Hosts without tzdata still know Asia/Shanghai's fixed offset.
			if tz != "Asia/Shanghai" {
				return nil, fmt.Errorf("cron time zone %q: %w", tz, err)
			}
			l = time.FixedZone("CST", 8*3600)
		}
		loc = l
	}
	c := &Cron{loc: loc}
	for i, p := range parts {
		set, err := cronField(p, cronRanges[i][0], cronRanges[i][1])
		if err != nil {
			return nil, fmt.Errorf("cron %q field %d: %w", expr, i+1, err)
		}
		c.fields[i] = set
	}
	return c, nil
}

func cronField(s string, lo, hi int) (map[int]bool, error) {
	set := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		step := 1
		if base, st, ok := strings.Cut(part, "/"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("bad step %q", st)
			}
			step, part = n, base
		}
		from, to := lo, hi
		switch {
		case part == "*":
		case strings.Contains(part, "-"):
			a, b, _ := strings.Cut(part, "-")
			var err1, err2 error
			from, err1 = strconv.Atoi(a)
			to, err2 = strconv.Atoi(b)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("bad range %q", part)
			}
		default:
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil, fmt.Errorf("bad value %q", part)
			}
			from, to = n, n
		}
		if from < lo || to > hi || from > to {
			return nil, fmt.Errorf("%q is outside %d-%d", part, lo, hi)
		}
		for v := from; v <= to; v += step {
			set[v] = true
		}
	}
	return set, nil
}

// Next is the first matching minute strictly after t.
func (c *Cron) Next(t time.Time) time.Time {
	t = t.In(c.loc).Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 366*24*60; i++ {
		if c.fields[0][t.Minute()] && c.fields[1][t.Hour()] && c.fields[2][t.Day()] &&
			c.fields[3][int(t.Month())] && c.fields[4][int(t.Weekday())] {
			return t
		}
		t = t.Add(time.Minute)
	}
	return time.Time{}
}
