"""Kafka's murmur2 partitioner, checked against Kafka's and librdkafka's own vectors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.log.partitioner import (
    murmur2,
    murmur2_many,
    partition_for,
    partition_for_many,
    to_positive,
)

# apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
# testMurmur2: byte arrays -> expected Java int (signed 32-bit).
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    bytes([ord("a"), ord("b"), ord("c")]): 479470107,
}

# confluentinc/librdkafka src/rdmurmur2.c, unittest_murmur2: keys -> "java_murmur2_results"
# (u32 bit patterns of the Java int; the C test covers aligned/unaligned reads and "").
_UNALIGNED = b"PreAmbleWillBeRemoved,ThePrePartThatIs"
LIBRDKAFKA_UNITTEST = {
    b"kafka": 0xD067CF64,
    b"giberish123456789": 0x8F552B0C,
    b"1234": 0x9FC97B14,
    b"234": 0xE7C009CA,
    b"34": 0x873930DA,
    b"4": 0x5A4B5CA1,
    _UNALIGNED: 0x78424F1C,
    _UNALIGNED[1:]: 0x4A62B377,
    _UNALIGNED[2:]: 0xE0E4E09E,
    _UNALIGNED[3:]: 0x62B8B43F,
    b"": 0x106E08D9,
}


def _signed(u32: int) -> int:
    return u32 - (1 << 32) if u32 & 0x80000000 else u32


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST.items())
def test_murmur2_matches_kafka_utils_test(key, expected):
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "expected"), LIBRDKAFKA_UNITTEST.items())
def test_murmur2_matches_librdkafka_java_results(key, expected):
    assert murmur2(key) == _signed(expected)


def test_partition_is_to_positive_mod_n():
    # Kafka: Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions (not abs()).
    for key, h in KAFKA_UTILS_TEST.items():
        for n in (1, 3, 4, 12, 1024):
            assert partition_for(key, n) == (h & 0x7FFFFFFF) % n
    assert to_positive(-2147483648) == 0  # abs() would overflow / differ here
    assert to_positive(-1) == 0x7FFFFFFF
    assert partition_for(b"21", 4) == (-973932308 & 0x7FFFFFFF) % 4


def test_vectorised_paths_match_the_scalar_one():
    keys = list(KAFKA_UTILS_TEST) + list(LIBRDKAFKA_UNITTEST)
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]
    parts = partition_for_many(keys * 3, 7)
    assert parts.dtype == np.int64
    assert parts.tolist() == [partition_for(k, 7) for k in keys * 3]


@given(st.lists(st.binary(max_size=40), max_size=60), st.integers(1, 64))
def test_many_equals_one_by_one(keys, n):
    assert partition_for_many(keys, n).tolist() == [partition_for(k, n) for k in keys]
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]


@given(st.binary(max_size=64))
def test_murmur2_is_a_java_int(key):
    assert -(2**31) <= murmur2(key) < 2**31


def test_bad_partition_count():
    with pytest.raises(ValueError, match="num_partitions"):
        partition_for(b"x", 0)
    with pytest.raises(ValueError, match="num_partitions"):
        partition_for_many([b"x"], 0)


def test_keys_must_be_bytes():
    with pytest.raises(TypeError, match="encode"):
        murmur2("user-1")  # type: ignore[arg-type]
