"""The Spark SQL that sqlglot transpiles from segments: its text, and real runs on a local
SparkSession compared with the pandas reference."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from engagelab.segments import (
    Segment,
    did,
    first_time,
    last_time,
    near,
    prop,
    same_property,
    was_sent,
)

from .conftest import AT, NASTY

OPERATOR_CASES = [
    (prop("city") == "O'Brien", r"`p`.`city` = 'O\'Brien'"),
    (prop("city") != "x", r"`p`.`city` <> 'x'"),
    (prop("age") < 3, r"`p`.`age` < 3"),
    (prop("age") <= 3, r"`p`.`age` <= 3"),
    (prop("age") > 3, r"`p`.`age` > 3"),
    (prop("age") >= 3, r"`p`.`age` >= 3"),
    (prop("age").between(1, 2), r"`p`.`age` BETWEEN 1 AND 2"),
    (prop("city").isin(["a", "b"]), r"`p`.`city` IN ('a', 'b')"),
    (prop("city").contains("50%_"), r"LOCATE('50%_', `p`.`city`) > 0"),
    (prop("city").starts_with("B\\"), r"STARTSWITH(`p`.`city`, 'B\\')"),
    (prop("city").matches("^Ber"), r"`p`.`city` RLIKE '^Ber'"),
    (prop("city").not_matches("^Ber"), r"NOT `p`.`city` RLIKE '^Ber'"),
    (prop("city").exists(), r"NOT `p`.`city` IS NULL"),
    (prop("city").not_exists(), r"`p`.`city` IS NULL"),
    (prop("signup") >= dt.datetime(2026, 1, 1, tzinfo=dt.UTC), r"`p`.`signup` >= CAST('2026-01-01 00:00:00.000000+00:00' AS TIMESTAMP)"),
    (was_sent("Promo"), r"ARRAY_CONTAINS(`e`.`labels`, 'Promo')"),
    (near(52.5, 13.4, 5), r"6371.0088 * 2 * ASIN(SQRT(LEAST(1, SIN((RADIANS(`p`.`latitude`) - RADIANS(52.5)) / 2)"),
    (same_property("A", "B", "product"), r"EXCEPT SELECT `e`.`user_id`, `e`.`product` FROM `events` AS `e`"),
    (did("A", at_least=2, within_days=3), r"GROUP BY `e`.`user_id` HAVING COUNT(*) >= 2"),
    (~did("A"), r"NOT COALESCE(`p`.`user_id` IN (SELECT `e`.`user_id` FROM `events` AS `e` WHERE `e`.`event` = 'A'), FALSE)"),
]  # fmt: skip


@pytest.mark.parametrize(("cond", "fragment"), OPERATOR_CASES, ids=[f for _, f in OPERATOR_CASES])
def test_spark_sql_text(cond, fragment):
    sql = Segment(cond).to_sql("spark", at=AT)
    assert fragment in sql, sql
    assert sql.startswith("SELECT DISTINCT `p`.`user_id` FROM `profiles` AS `p` WHERE")
    assert not re.search(r"REGEXP_MATCHES|STRPOS|TIMESTAMPTZ", sql)


@pytest.fixture(scope="module")
def spark_world(world2, tmp_path_factory):
    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    folder = tmp_path_factory.mktemp("spark")
    pq.write_table(world2.events_arrow, folder / "events.parquet")
    pq.write_table(world2.profiles_arrow, folder / "profiles.parquet")
    spark = (
        SparkSession.builder.master("local[1]").appName("engagelab-segments")
        .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2").getOrCreate()
    )  # fmt: skip
    spark.read.parquet(str(folder / "events.parquet")).createOrReplaceTempView("events")
    spark.read.parquet(str(folder / "profiles.parquet")).createOrReplaceTempView("profiles")
    yield spark
    spark.stop()


SPARK_SEGMENTS = [
    did("Charged", at_least=2, within_days=30) & prop("city").matches("^Ber") & ~did("Uninstalled"),
    prop("city").isin(NASTY[2:8]) | prop("city").contains("%") | prop("city").starts_with("Ber_"),
    (prop("city") == "O'Brien")
    | (prop("city") == "back\\slash")
    | (prop("city") == "'; DROP TABLE events; --"),
    prop("city").not_matches("[%_]")
    & (prop("age").between(20, 50) | prop("vip").eq(True))
    & ~prop("score").not_exists(),
    (prop("city") >= "B") & (prop("city") < "Zz") | prop("city").matches("ü|東"),
    prop("signup") >= AT - dt.timedelta(days=100),
    did(
        "Charged", sum_of=("amount", ">=", 40), between=(dt.date(2026, 1, 1), dt.date(2026, 2, 20))
    ),
    did(
        "Charged",
        avg_of=("amount", "between", (5, 30)),
        where=prop("product").isin(["X", "O'Neil"]),
    ),
    did("Added to Cart", at_least=0, at_most=1, within_days=40) & did("App Launched"),
    first_time("App Launched", within_days=60) | last_time("Charged", within_days=10),
    same_property("Added to Cart", "Charged", "product", within_days=60),
    near(52.5, 13.4, 150) | near(52.5, 13.4, 60, source="events", event="Charged", within_days=30),
    was_sent("it's", within_days=60) & ~was_sent("50%"),
    did("Notification Sent", where=prop("labels").contains("Promo")),
]


@pytest.mark.spark
@pytest.mark.parametrize("cond", SPARK_SEGMENTS, ids=str)
def test_spark_runs_the_same_segments(spark_world, world2, cond):
    seg = Segment(cond)
    rows = spark_world.sql(seg.to_sql("spark", at=AT)).collect()
    got = [r[0] for r in rows]
    assert len(got) == len(set(got))
    want = world2.ref(seg)
    assert set(got) == want
    assert set(got) == world2.duck(seg)
