package runcmp

import (
	"math"
	"sort"
)

// BenjaminiHochberg controls the false discovery rate across a family of
// tests, the expected share of false flags among the flagged: with the
// p-values sorted, p(1) <= ... <= p(m), it finds the largest k with
// p(k) <= k/m * alpha and rejects the k smallest (Benjamini and Hochberg
// 1995, the step-up procedure). It returns, in the order of p, each test's
// adjusted p-value q = min over j >= its rank of p(j) * m / j, capped at 1,
// and whether it is rejected; rejected is exactly q <= alpha.
//
// Unlike Bonferroni, which asks every test for p <= alpha/m, the bar rises
// with the number of small p-values: many rows moving together are found
// even when each alone would not be, while a lone change still needs
// p <= alpha/m.
func BenjaminiHochberg(p []float64, alpha float64) (q []float64, rejected []bool) {
	m := len(p)
	q = make([]float64, m)
	rejected = make([]bool, m)
	if m == 0 {
		return q, rejected
	}
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p[order[a]] < p[order[b]] })
	k := 0 // the step-up cut: the largest rank whose p is under its bar
	for rank := m; rank >= 1; rank-- {
		if p[order[rank-1]] <= float64(rank)/float64(m)*alpha {
			k = rank
			break
		}
	}
	for rank := 1; rank <= k; rank++ {
		rejected[order[rank-1]] = true
	}
	run := 1.0 // the running minimum from the largest p down
	for rank := m; rank >= 1; rank-- {
		i := order[rank-1]
		run = math.Min(run, p[i]*float64(m)/float64(rank))
		q[i] = run
	}
	return q, rejected
}
