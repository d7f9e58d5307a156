#!/usr/bin/env python3
"""Reference values for the insight statistics (src/domain/insight/), computed apart
from the Rust code: with statsmodels' and scipy's own implementations where they have
one (Newcombe's interval, Welch's test, the point-biserial correlation), else from the
published formula in numpy. The unit tests quote this script's output.

    pip install scipy numpy statsmodels snowballstemmer   # scipy 1.17, statsmodels 0.15
    python3 tests/reference/insight.py compare|series|themes|drivers
"""

import math
import sys

import numpy as np
from scipy import optimize, stats

Z = stats.norm.ppf(0.975)


def nps_diff(a, b):
    """MeasuringU / Rocks (2016) adjusted-Wald difference of two NPS, B - A."""

    def adj(p, d, n):
        m = n + 3
        pt, dt = (p + 0.75) / m, (d + 0.75) / m
        return pt - dt, (pt + dt - (pt - dt) ** 2) / m

    (xa, va), (xb, vb) = adj(*a), adj(*b)
    se = math.sqrt(va + vb)
    z = (xb - xa) / se
    return dict(
        diff=100 * ((b[0] - b[1]) / b[2] - (a[0] - a[1]) / a[2]),
        lo=max(-200, 100 * (xb - xa - Z * se)),
        hi=min(200, 100 * (xb - xa + Z * se)),
        z=z,
        p=2 * stats.norm.sf(abs(z)),
    )


def newcombe(ka, na, kb, nb):
    """statsmodels' Newcombe (method 10) interval of p_b - p_a, and the z inverting it."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(kb, nb, ka, na, method="newcomb", compare="diff", alpha=0.05)
    d = kb / nb - ka / na

    def bound(z):
        alpha = 2 * stats.norm.sf(z)
        l, h = confint_proportions_2indep(kb, nb, ka, na, method="newcomb", compare="diff", alpha=alpha)
        return l if d > 0 else -h

    z = 0.0 if d == 0 else optimize.brentq(bound, 1e-9, 30, xtol=1e-14)
    return dict(lo=100 * lo, hi=100 * hi, z=z, p=2 * stats.norm.sf(z))


def welch(a, b):
    r = stats.ttest_ind(b, a, equal_var=False)
    ci = r.confidence_interval(0.95)
    return dict(t=r.statistic, df=r.df, p=r.pvalue, lo=ci.low, hi=ci.high)


def compare():
    print("nps 40/25/100 vs 70/20/150", nps_diff((40, 25, 100), (70, 20, 150)))
    print("nps 30/40/200 vs 90/20/200", nps_diff((30, 40, 200), (90, 20, 200)))
    print("nps 0/1/1 vs 1/0/1", nps_diff((0, 1, 1), (1, 0, 1)))
    print("newcombe 48/80 vs 56/70", newcombe(48, 80, 56, 70))
    print("newcombe 10/10 vs 0/20", newcombe(10, 10, 0, 20))
    a = [7, 8, 6, 9, 7, 8, 5, 7]
    b = [9, 9, 10, 8, 6, 10, 9, 7, 10, 9, 8, 10]
    print("welch", welch(a, b))


def series():
    """Shewhart limits of NPS points around the pooled NPS (from the counts)."""
    pts = [(20, 10, 50), (21, 10, 50), (45, 2, 50), (4, 6, 10)]
    scores = np.concatenate([np.r_[np.ones(p), -np.ones(d), np.zeros(n - p - d)] for p, d, n in pts])
    centre, sigma = 100 * scores.mean(), 100 * scores.std(ddof=0)
    for n in (50, 10):
        h = 3 * sigma / math.sqrt(n)
        print(f"n={n}", dict(centre=centre, lo=max(-100, centre - h), hi=min(100, centre + h)))


def log_odds(ya, na, yb, nb, alpha, alpha0):
    """Monroe, Colaresi and Quinn (2008), eq. 16 and 18."""
    delta = math.log((ya + alpha) / (na + alpha0 - ya - alpha)) - math.log((yb + alpha) / (nb + alpha0 - yb - alpha))
    return delta, delta / math.sqrt(1 / (ya + alpha) + 1 / (yb + alpha))


def themes():
    import glob
    import re

    import snowballstemmer

    for lang, words in [
        ("english", "deliveries late doesn't work"),
        ("german", "lieferungen kamen nicht pünktlich"),
        ("french", "application ne fonctionne pas"),
        ("spanish", "aplicación no funciona bien"),
    ]:
        print(lang, snowballstemmer.stemmer(lang).stemWords(words.split()))
    print("log_odds y=(8,1) n=(100,150) alpha=9 alpha0=250", log_odds(8, 100, 1, 150, 9, 250))

    # The corpus of themes::tests::a_small_corpus_ranks_as_the_reference_does.
    nltk = glob.glob(glob.os.path.expanduser("~/.cargo/registry/src/*/stop-words-0.10.*/src/nltk/english"))[0]
    stop = {w for w in open(nltk).read().split() if not (w in ("no", "not", "nor") or w.endswith("n't"))}
    stem = snowballstemmer.stemmer("english").stemWord
    detractors = [
        "Support is slow and the app crashes",
        "The app crashes every day, support never answers",
        "Too expensive and slow support",
        "Billing is confusing and too expensive",
    ]
    promoters = [
        "Great app, easy to use",
        "Easy setup and great support",
        "I love how easy the reports are",
        "Great reports, the app is fast",
        "Fast and easy",
    ]

    def terms(text):
        words = [None if w in stop else (stem(w), w) for w in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.lower())]
        uni = {("w", w[0]): w[1] for w in words if w}
        bi = {("p", a[0] + " " + b[0]): a[1] + " " + b[1] for a, b in zip(words, words[1:]) if a and b}
        return {**uni, **bi}

    counts = {}
    for side, docs in ((0, detractors), (1, promoters)):
        for d in docs:
            for k, form in terms(d).items():
                counts.setdefault(k, [0, 0, form])[side] += 1
    n = {kind: [sum(c[s] for k, c in counts.items() if k[0] == kind) for s in (0, 1)] for kind in ("w", "p")}
    rows = []
    for k, (ya, yb, form) in counts.items():
        if ya + yb < 2:
            continue
        na, nb = n[k[0]]
        d, z = log_odds(ya, na, yb, nb, ya + yb, na + nb)
        rows.append((z, form, ya, yb))
    for row in sorted(rows, key=lambda r: (-abs(r[0]), -(r[2] + r[3]), r[1])):
        print("%+.10f %-16s %d %d" % row)


def drivers():
    p = np.array([12, 15, 9, 20, 14, 18, 11, 16, 13, 17, 19, 10], float)
    d = np.array([8, 12, 5, 10, 14, 7, 9, 11, 6, 13], float)
    n1, n2 = len(p), len(d)
    s = math.sqrt(((n1 - 1) * p.var(ddof=1) + (n2 - 1) * d.var(ddof=1)) / (n1 + n2 - 2))
    dd = (p.mean() - d.mean()) / s
    j = 1 - 3 / (4 * (n1 + n2) - 9)
    se = j * math.sqrt((n1 + n2) / (n1 * n2) + dd**2 / (2 * (n1 + n2)))
    print("hedges", dict(g=j * dd, lo=j * dd - Z * se, hi=j * dd + Z * se))
    r, pv = stats.pointbiserialr(np.r_[np.ones(n1), np.zeros(n2)], np.r_[p, d])
    h = Z / math.sqrt(n1 + n2 - 3)
    print("pointbiserial", dict(r=r, p=pv, lo=math.tanh(math.atanh(r) - h), hi=math.tanh(math.atanh(r) + h)))


if __name__ == "__main__":
    {"compare": compare, "series": series, "themes": themes, "drivers": drivers}[sys.argv[1]]()
