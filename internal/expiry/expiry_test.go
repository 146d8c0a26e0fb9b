package expiry

import (
	"fmt"
	"testing"
	"time"
)

func TestDaysLeft(t *testing.T) {
	notAfter := time.Date(2029, 3, 1, 11, 55, 0, 0, time.UTC)
	cases := []struct {
		name    string
		left    time.Duration // notAfter − now
		days    int
		expired bool
	}{
		{"three years", notAfter.Sub(notAfter.AddDate(-3, 0, 0)), 1096, false},
		{"24h and 1ns", day + 1, 1, false},
		{"exactly 24h", day, 1, false},
		{"24h less 1ns", day - 1, 0, false},
		{"1ns", 1, 0, false},
		{"at notAfter", 0, 0, false},
		{"expired by 1ns", -1, -1, true},
		{"expired by 24h less 1ns", -day + 1, -1, true},
		{"expired by exactly 24h", -day, -1, true},
		{"expired by 24h and 1ns", -day - 1, -2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := notAfter.Add(-tc.left)
			if got := DaysLeft(notAfter, now); got != tc.days {
				t.Errorf("DaysLeft = %d, want %d", got, tc.days)
			}
			if got := Expired(notAfter, now); got != tc.expired {
				t.Errorf("Expired = %v, want %v", got, tc.expired)
			}
		})
	}
}

// TestZones: the answer depends on the instants, not on the zone either
// is written in (a certificate's UTC notAfter, a clerk's local clock).
func TestZones(t *testing.T) {
	notAfter := time.Date(2029, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, zone := range []*time.Location{time.FixedZone("CST", 8*3600), time.FixedZone("W", -11*3600)} {
		t.Run(zone.String(), func(t *testing.T) {
			for _, left := range []time.Duration{day, day - 1, 0, -1} {
				now := notAfter.Add(-left)
				if a, b := DaysLeft(notAfter, now), DaysLeft(notAfter.In(zone), now.In(zone)); a != b {
					t.Errorf("%s left: %d in UTC, %d in %s", left, a, b, zone)
				}
				if a, b := Expired(notAfter, now), Expired(notAfter.In(zone), now.In(zone)); a != b {
					t.Errorf("%s left: expired %v in UTC, %v in %s", left, a, b, zone)
				}
			}
		})
	}
}

func ExampleDaysLeft() {
	notAfter := time.Date(2029, 3, 1, 12, 0, 0, 0, time.UTC)
	fmt.Println(DaysLeft(notAfter, notAfter.Add(-36*time.Hour)), DaysLeft(notAfter, notAfter.Add(time.Hour)))
	// Output: 1 -1
}
