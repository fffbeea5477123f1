package runcmp

import (
	"math"
	"sort"
)

// MannWhitneyU tests whether x and y come from the same distribution. It
// returns the U statistic of x and the two-sided p-value: exact (from the
// distribution of U under no ties) for small samples without ties, and
// otherwise the normal approximation with the tie correction.
func MannWhitneyU(x, y []float64) (u, p float64) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	type obs struct {
		v   float64
		inX bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Ranks, averaging ties; the tie term corrects the variance.
	var rx, tieTerm float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j+1 < len(all) && all[j+1].v == all[i].v {
			j++
		}
		rank := float64(i+j)/2 + 1
		if t := float64(j - i + 1); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		for k := i; k <= j; k++ {
			if all[k].inX {
				rx += rank
			}
		}
		i = j + 1
	}
	u = rx - float64(n1*(n1+1))/2
	if !ties && n1*n2 <= 400 {
		return u, exactP(u, n1, n2)
	}
	n := float64(n1 + n2)
	mean := float64(n1*n2) / 2
	variance := float64(n1*n2) / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return u, 1 // every value equal: no evidence of a difference
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance) // continuity correction
	if z < 0 {
		z = 0
	}
	return u, math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactP is the two-sided p-value of U from its exact null distribution: the
// number of ways to place n1 of n1+n2 ranks so that their U is each value,
// counted by dynamic programming.
func exactP(u float64, n1, n2 int) float64 {
	maxU := n1 * n2
	// ways[i][j][k]: arrangements of i x's and j y's with U = k.
	prev := make([][]float64, n2+1)
	for j := range prev {
		prev[j] = make([]float64, maxU+1)
		prev[j][0] = 1
	}
	for i := 1; i <= n1; i++ {
		cur := make([][]float64, n2+1)
		cur[0] = make([]float64, maxU+1)
		cur[0][0] = 1
		for j := 1; j <= n2; j++ {
			cur[j] = make([]float64, maxU+1)
			for k := 0; k <= i*j; k++ {
				// The largest value is an x (it beats all j y's) or a y.
				v := cur[j-1][k]
				if k >= j {
					v += prev[j][k-j]
				}
				cur[j][k] = v
			}
		}
		prev = cur
	}
	dist := prev[n2]
	var total float64
	for _, c := range dist {
		total += c
	}
	mean := float64(maxU) / 2
	d := math.Abs(u - mean)
	var tail float64
	for k, c := range dist {
		if math.Abs(float64(k)-mean) >= d-1e-9 {
			tail += c
		}
	}
	return math.Min(1, tail/total)
}

// MinP is the smallest two-sided p-value a Mann-Whitney test can give with
// n1 and n2 runs, whatever they measured: every run of one side beyond every
// run of the other, one of the two most extreme of the C(n1+n2, n1) equally
// likely orderings, so 2 / C(n1+n2, n1). Five runs a side give 2/252 =
// 0.0079; ten give 2/184756 = 1.1e-5. Ties only make it larger.
func MinP(n1, n2 int) float64 {
	if n1 <= 0 || n2 <= 0 {
		return 1
	}
	// C(n1+n2, n1) as a running product; exact in float64 for the run
	// counts benchmarks have, and monotone beyond.
	c := 1.0
	for i := 1; i <= n1; i++ {
		c = c * float64(n2+i) / float64(i)
	}
	return math.Min(1, 2/c)
}

// RunsFor is the fewest runs a side, each side alike, with which a change in
// a single row out of rows can be flagged at false discovery rate alpha: the
// smallest n with MinP(n, n) <= alpha/rows, where Benjamini-Hochberg puts
// the bar for a lone discovery.
func RunsFor(rows int, alpha float64) int {
	bar := alpha / float64(max(rows, 1))
	n := 1
	for MinP(n, n) > bar && n < 1000 {
		n++
	}
	return n
}
