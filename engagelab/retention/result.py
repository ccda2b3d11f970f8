"""RetentionResult: the cohort × period table with intervals, censoring and plots.

``cells`` (long format) holds one row per breakdown group × cohort × column, plus the
"All cohorts" rows (``cohort`` is NaT there): ``size`` (the users the cell is measured
on), ``retained``, ``rate`` and the Wilson interval ``ci_low`` / ``ci_high``. A cell
that cannot be observed yet (its period has not ended by ``until``) is *censored*:
``retained``, ``rate`` and the interval are missing, never zero. The "All cohorts"
row of a column pools only the cohorts that reached it, weighted by their size.
A cell is *partial* when it is counted but its period runs past the last event in the data
(the day the data ends in the middle of): its rate may still rise, so tables mark it
(``◔``, class ``el-partial``) and plots draw it hollow.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from engagelab.errors import ValidationError
from engagelab.retention._stats import newcombe
from engagelab.retention.spec import RetentionSpec

__all__ = ["ALL", "DIFF_COLUMNS", "LONG_COLUMNS", "RetentionResult", "differences"]

ALL = "All cohorts"
LONG_COLUMNS = [
    "group",
    "cohort",
    "period",
    "period_index",
    "size",
    "retained",
    "rate",
    "ci_low",
    "ci_high",
    "censored",
    "partial",
]


DIFF_COLUMNS = ["baseline", "period", "period_index", "size", "retained", "rate",
                "baseline_size", "baseline_retained", "baseline_rate", "difference", "ci_low",
                "ci_high"]  # fmt: skip


def differences(
    overall: dict[str, pd.DataFrame], baseline: str, confidence: float, key: str
) -> pd.DataFrame:
    """Each entry's "All cohorts" rate minus ``baseline``'s, column by column.

    Args:
        overall: name -> its "All cohorts" rows (``period``, ``period_index``, ``size``,
            ``retained``).
        baseline: the name compared against.
        confidence: level of the Newcombe hybrid score interval of each difference.
        key: name of the output column that holds the entry's name.

    A column censored for either side has no difference (NaN).
    """
    if baseline not in overall:
        raise ValidationError(
            "baseline", baseline, "must be one of " + ", ".join(map(repr, overall))
        )
    base = overall[baseline].set_index("period_index")
    parts = []
    for name, rows in overall.items():
        if name == baseline:
            continue
        r = rows.set_index("period_index")
        b = base.reindex(r.index)
        x1, n1 = r["retained"].astype("Float64"), r["size"].astype("Float64")
        x2, n2 = b["retained"].astype("Float64"), b["size"].astype("Float64")
        d, lo, hi = newcombe(x1.to_numpy(float, na_value=np.nan), n1.to_numpy(float, na_value=np.nan),
                             x2.to_numpy(float, na_value=np.nan), n2.to_numpy(float, na_value=np.nan),
                             confidence)  # fmt: skip
        parts.append(pd.DataFrame({
            key: name, "baseline": baseline, "period": r["period"].to_numpy(),
            "period_index": r.index.to_numpy(), "size": r["size"].to_numpy(),
            "retained": r["retained"].to_numpy(), "rate": (x1 / n1).to_numpy(float, na_value=np.nan),
            "baseline_size": b["size"].to_numpy(), "baseline_retained": b["retained"].to_numpy(),
            "baseline_rate": (x2 / n2).to_numpy(float, na_value=np.nan),
            "difference": d, "ci_low": lo, "ci_high": hi,
        }))  # fmt: skip
    if not parts:
        return pd.DataFrame(columns=[key, *DIFF_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def _heat(rate: float) -> str:
    """Background colour of a rate (white → deep blue)."""
    a = 0.08 + 0.85 * float(np.clip(rate, 0, 1))
    return f"background:rgba(31,119,180,{a:.2f});color:{'white' if a > 0.55 else 'black'}"


@dataclass(frozen=True)
class RetentionResult:
    """A computed retention table (see the module docstring).

    Attributes:
        spec: the query.
        cells: the long table (``LONG_COLUMNS``).
        until: end of observation used for censoring.
        sql: the SQL that was run.
        message: why the result is empty, when it is.
        name: a title (e.g. the label).
    """

    spec: RetentionSpec
    cells: pd.DataFrame
    until: Any
    sql: str = ""
    message: str = ""
    name: str = ""
    notes: tuple[str, ...] = field(default=())

    # ------------------------------------------------------------------ access
    @property
    def empty(self) -> bool:
        """True when no user started a cohort."""
        return self.cells.empty

    def long(self, all_cohorts: bool = True) -> pd.DataFrame:
        """One row per (group,) cohort × column: size, retained, rate, ci_low, ci_high."""
        out = self.cells if all_cohorts else self.cells[self.cells["cohort"].notna()]
        out = out.reset_index(drop=True)
        return out if self.spec.breakdown else out.drop(columns="group")

    def overall(self) -> pd.DataFrame:
        """The "All cohorts" rows (size-weighted over the cohorts that reached each column)."""
        out = self.long()
        return out[out["cohort"].isna()].reset_index(drop=True)

    def compare(self, baseline: str | None = None) -> pd.DataFrame:
        """Breakdown groups against a baseline group: the difference of their "All cohorts"
        rates in every column, with a Newcombe hybrid score interval.

        Args:
            baseline: the group compared against (default: the first group in sort order).

        Returns:
            A row per other group × column: ``group``, ``baseline``, ``period``,
            ``period_index``, the two sizes, retained counts and rates, ``difference``
            (group − baseline), ``ci_low``, ``ci_high``. The groups are not randomised: read
            a difference as an association, not an effect.
        """
        if not self.spec.breakdown:
            raise ValidationError(
                "breakdown", None, "must name a profile property to compare groups"
            )
        ov = self.overall()
        overall = {str(g): part for g, part in ov.groupby("group", sort=True)}
        if not overall:
            return pd.DataFrame(columns=["group", *DIFF_COLUMNS])
        base = next(iter(overall)) if baseline is None else baseline
        return differences(overall, base, self.spec.confidence, "group")

    def to_pandas(self, value: str = "rate") -> pd.DataFrame:
        """The matrix: a row per cohort (and the "All cohorts" row), a column per period.

        Args:
            value: ``'rate'``, ``'retained'``, ``'ci_low'``, ``'ci_high'`` or ``'partial'``
                (True where the period runs past the last event). The first column is the
                cohort size.
        """
        if value not in ("rate", "retained", "ci_low", "ci_high", "partial"):
            raise ValueError(
                f"value == {value!r}, must be one of 'rate', 'retained', 'ci_low', 'ci_high', "
                "'partial'"
            )
        cols = self.spec.columns()
        if self.empty:
            return pd.DataFrame(columns=["size", *cols])
        d = self.cells.copy()
        d["cohort_label"] = d["cohort"].map(
            lambda c: ALL if pd.isna(c) else pd.Timestamp(c).strftime("%Y-%m-%d")
        )
        keys = ["group", "cohort_label"] if self.spec.breakdown else ["cohort_label"]
        wide = d.pivot_table(
            index=keys, columns="period", values=value, aggfunc="first", dropna=False
        )
        wide = wide.reindex(columns=cols)
        sizes = d[d["cohort"].notna()].drop_duplicates(keys).set_index(keys)["size"]
        all_size = sizes.groupby(level=0).sum() if self.spec.breakdown else None
        wide.insert(0, "size", np.nan)
        for idx in wide.index:
            is_all = (idx[-1] if isinstance(idx, tuple) else idx) == ALL
            if is_all:
                wide.loc[idx, "size"] = sizes.sum() if all_size is None else all_size[idx[0]]
            else:
                wide.loc[idx, "size"] = sizes.loc[idx]
        wide["size"] = wide["size"].astype("int64")
        order = sorted(
            wide.index,
            key=lambda i: (i[:-1], i[-1] == ALL, i[-1]) if isinstance(i, tuple) else (i == ALL, i),
        )
        wide = wide.loc[order]
        wide.index.names = ["group", "cohort"] if self.spec.breakdown else ["cohort"]
        wide.columns.name = None
        return wide

    # ----------------------------------------------------------------- display
    def _title(self) -> str:
        s = self.spec
        what = f"{s.cohort}-time" if s.cohort == "first" else "recurring"
        return (
            f"{self.name + ': ' if self.name else ''}{what} cohorts of {s.start_event!r}"
            f"{f' labelled {s.start_label!r}' if s.start_label else ''}, return {s.return_event!r} "
            f"{s.mode} {s.period} N ({s.window}); {int(s.confidence * 100)}% Wilson intervals"
        )

    def __repr__(self) -> str:
        if self.empty:
            return f"RetentionResult(empty: {self.message})"
        ov = self.overall()
        head = ", ".join(
            f"{p}={r:.3f}" for p, r in zip(ov["period"], ov["rate"], strict=True) if pd.notna(r)
        )
        n = int(self.cells["cohort"].nunique())
        return f"RetentionResult({self._title()}; {n} cohorts; all cohorts: {head})"

    def _repr_html_(self) -> str:
        title = html.escape(self._title())
        if self.empty:
            return f"<div class='el-retention-empty'><b>{title}</b><br>{html.escape(self.message)}</div>"
        rate = self.to_pandas("rate")
        lo, hi = self.to_pandas("ci_low"), self.to_pandas("ci_high")
        part = self.to_pandas("partial")
        cols = list(rate.columns[1:])
        idx_names = list(rate.index.names)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [*idx_names, "size", *cols])
        rows = []
        for idx in rate.index:
            keys = idx if isinstance(idx, tuple) else (idx,)
            is_all = keys[-1] == ALL
            tds = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
            tds += f"<td>{int(rate.loc[idx, 'size']):,}</td>"
            for c in cols:
                r = rate.loc[idx, c]
                if pd.isna(r):
                    tds += "<td class='el-censored' title='not observable yet'></td>"
                else:
                    tip = f"{r:.1%} [{lo.loc[idx, c]:.1%}, {hi.loc[idx, c]:.1%}]"
                    if pd.notna(pv := part.loc[idx, c]) and bool(pv):
                        tip += "; incomplete: the period runs past the last event, may still rise"
                        tds += (
                            f"<td class='el-cell el-partial' title='{tip}' style='{_heat(r)};"
                            "font-style:italic;outline:1px dashed #888'>"
                            f"{r:.1%} ◔</td>"
                        )
                        continue
                    tds += f"<td class='el-cell' style='{_heat(r)}' title='{tip}'>{r:.1%}</td>"
            style = " style='font-weight:bold;border-top:2px solid #333'" if is_all else ""
            rows.append(f"<tr{style}>{tds}</tr>")
        notes = "".join(f"<div class='el-note'>{html.escape(n)}</div>" for n in self.notes)
        return (
            f"<div class='el-retention'>{notes}<table class='el-retention-table'>"
            f"<caption>{title}; blank cells are not observable yet (censored)"
            f"{'; ◔ = incomplete period (the data ends inside it)' if self.cells['partial'].any() else ''}"
            "</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )

    def plot(self, ax: Any = None, cohorts: bool = False) -> Any:
        """Retention curves with interval bands ("All cohorts", or every cohort); returns the Figure."""
        from engagelab.figures import new_figure

        if ax is None:
            fig = new_figure(figsize=(7, 4))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        d = self.long() if self.spec.breakdown else self.long().assign(group=None)
        d = d if cohorts else d[d["cohort"].isna()]
        grp: Any  # a group value or missing; pandas types group keys as Hashable
        coh: Any  # a cohort start or missing ("All cohorts")
        for (grp, coh), part in d.groupby(["group", "cohort"], dropna=False, sort=True):
            part = part.sort_values("period_index")
            name = ALL if pd.isna(coh) else pd.Timestamp(coh).strftime("%Y-%m-%d")
            if grp is not None and not pd.isna(grp):
                name = f"{grp}: {name}"
            x = part["period_index"].to_numpy()
            y = part["rate"].to_numpy(dtype=float)
            (line,) = ax.plot(x, y, marker="o", label=name)
            partial = part["partial"].to_numpy(dtype=bool)
            if partial.any():  # an incomplete period: hollow marker, not a drop to zero
                ax.plot(x[partial], y[partial], "o", mfc="white", mec=line.get_color(), ms=9,
                        label="_partial")  # fmt: skip
            ax.fill_between(
                x, part["ci_low"].to_numpy(dtype=float), part["ci_high"].to_numpy(dtype=float),
                color=line.get_color(), alpha=0.2,
            )  # fmt: skip
        cols = self.spec.columns()
        ax.set_xticks(range(len(cols)), cols, rotation=45 if len(cols) > 8 else 0)
        ax.set_ylabel("retained share")
        ax.set_ylim(0, 1.02)
        ax.set_title(self.name or f"{self.spec.return_event} after {self.spec.start_event}")
        if d["partial"].any():
            ax.annotate("hollow: incomplete period", (1, 0), xycoords="axes fraction",
                        ha="right", va="bottom", fontsize="x-small", color="#666")  # fmt: skip
        ax.legend(fontsize="small")
        fig.tight_layout()
        return fig
