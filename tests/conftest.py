"""Known failures, each a bug or limitation found by its test and not fixed yet.

They run in every CI pass as strict xfails: a test listed here that starts to
pass fails the run, so the list shrinks as the bugs are fixed. Each is described
in the note of issue 3 (engine) or 4 (gradients). Nothing here is skipped.
"""

import pytest

KNOWN_FAILURES = {
    'tests/test_spice_io.py::test_to_spice_round_trip_keeps_names_and_operating_point',
    'tests/test_errors.py::test_failed_add_nodes_does_not_reserve_names',
    'tests/test_errors.py::test_binary_file_is_a_parse_error[\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00]',
    'tests/test_errors.py::test_binary_file_is_a_parse_error[content1]',
    'tests/test_errors.py::test_binary_file_is_a_parse_error[title\\nR1 a 0 1k\\xff\\xfe\\n]',
    'tests/test_gradients.py::test_exact_gradient_both_ends_pinned_by_ideal_diodes',
    'tests/test_ngspice_agreement.py::test_huge_current_elsewhere_does_not_mask_kcl[1.5]',
    'tests/test_ngspice_agreement.py::test_huge_current_elsewhere_does_not_mask_kcl[2.0]',
    'tests/test_properties.py::test_shockley_law_at_small_and_large_bias[1e-09-0.0]',
    'tests/test_properties.py::test_shockley_law_at_small_and_large_bias[1e-09-1e-12]',
    'tests/test_properties.py::test_looser_tolerance_still_converges[1e-11]',
    'tests/test_properties.py::test_looser_tolerance_still_converges[1e-10]',
    'tests/test_properties.py::test_looser_tolerance_still_converges[1e-08]',
    'tests/test_properties.py::test_looser_tolerance_still_converges[1e-06]',
    'tests/test_properties.py::test_ideal_diode_pinning_a_junction[1.0-0.125-6.914400106940203e-13-True]',
    'tests/test_properties.py::test_ideal_diode_pinning_a_junction[-2.0-1.0-6.914400106940203e-13-False]',
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in KNOWN_FAILURES:
            item.add_marker(pytest.mark.xfail(
                strict=True, reason="known bug found by this test (see the issue note)"))
