"""The record log on real littlefs, on the real MicroPython binary (heap 128 KB):
power cuts at every write, a corrupted block, a full log."""

import pytest


def test_power_cut_at_every_write(mp_pass, shm_dir):
    out = mp_pass("powercut.py", str(shm_dir / "cut.img"), "60", "1")
    writes = int(out.split("writes ")[1].split()[0])
    cuts = int(out.split("cuts ")[1].split()[0])
    assert writes > 100 and cuts == writes  # every single write was cut once


def test_corrupted_block_is_caught_and_the_rest_survives(mp_pass, shm_dir):
    out = mp_pass("corrupt.py", str(shm_dir / "bad.img"))
    assert "corrupt 1 kept 299" in out


def test_full_log_keeps_counts_and_alerts(mp_pass, shm_dir):
    out = mp_pass("fulllog.py", str(shm_dir / "full.img"))
    assert "counted 49" in out


def test_reading_from_a_seq_seeks_and_survives_a_jump_in_seqs(mp_pass, shm_dir):
    assert "jumps 3" in mp_pass("logseek.py", str(shm_dir / "seek.img"))


@pytest.mark.parametrize("script", ["irq.py", "keys.py"])
def test_keys(mp_pass, script):
    mp_pass(script)


def test_faults_in_tasks_and_rolls_lose_nothing(mp_pass, shm_dir):
    """A roll that fails (a full heap) keeps its records in the journal until a later
    one succeeds; an exception in a task restarts the task, the keypad goes on."""
    out = mp_pass("taskfault.py", str(shm_dir / "tf.img"))
    assert "task restarted: MemoryError" in out
