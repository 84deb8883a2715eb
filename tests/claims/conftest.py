"""The claim tests' marker: ``@pytest.mark.claim(n)`` names the book's claim (1 to 11) a test measures.

The number is copied into the test's properties when it is collected, so a
junit XML report (``--junitxml``, read by ``experiments/claim_verdicts.py``)
says which claim every test is about, even one that errors before it measures.
What a test measured it records itself, with pytest's ``record_property``.
"""



def pytest_configure(config):
    config.addinivalue_line("markers", "claim(number): the book's claim (1 to 11) that the test measures")


def pytest_collection_modifyitems(items):
    for item in items:
        for marker in item.iter_markers("claim"):
            item.user_properties.append(("claim", int(marker.args[0])))
