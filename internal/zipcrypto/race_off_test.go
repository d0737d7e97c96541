//go:build !race

package zipcrypto

// raceDetector reports whether the tests run under the race detector,
// which slows Deflate down about twentyfold.
const raceDetector = false
