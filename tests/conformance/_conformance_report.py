"""What both conformance plugins report: the backend that actually ran.

fetch_ignite_tests parses the line (its first word after the colon is the
backend name: "pure", "compiled" or "ignite") to check that the run it asked
for is the run it got.
"""


def report_hooks(backend: str):
    """The report line and the two pytest hooks a plugin exports to print it."""
    line = f"fastignite conformance backend: {backend}"

    def pytest_report_header(config):
        return line

    def pytest_terminal_summary(terminalreporter):
        terminalreporter.write_line(line)  # again, because `-q` hides the header

    return line, pytest_report_header, pytest_terminal_summary
