//go:build !unix

package email

import "time"

// cpuTime is 0 where the process CPU time is not read: the benchmarks then
// report wall time only.
func cpuTime() time.Duration { return 0 }
