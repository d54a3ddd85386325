"""replace_once: a library function is replaced once however often the seam installs it, and the
library's own stays reachable."""
from __future__ import annotations

from scones.local.emulator.replacement import original, replace_once


class Library:
    @staticmethod
    def answer() -> int:
        return 41


def test_a_second_install_keeps_the_first_replacement():
    installs = []

    def wrap(answer):
        installs.append(answer)
        return lambda: answer() + 1

    replace_once(Library, "answer", wrap)
    first = Library.answer
    replace_once(Library, "answer", wrap)

    assert Library.answer is first and Library.answer() == 42
    assert len(installs) == 1
    assert original(Library, "answer")() == 41


def test_original_of_a_function_never_replaced_is_itself():
    def unchanged() -> None: ...

    class Owner:
        pass

    Owner.unchanged = unchanged
    assert original(Owner, "unchanged") is unchanged
