"""kubeedge-mapper: the node's KubeEdge release decides layout, transport and edgecore's socket."""

from __future__ import annotations

import pytest

from mappers.__main__ import _apply_release, build_parser


def args_of(*argv: str):
    args = build_parser().parse_args([*argv, "results"])
    _apply_release(args)
    return args


@pytest.mark.parametrize(
    ("release", "layout", "transport", "socket"),
    [
        ("", "1.4", "mqtt", "/etc/kubeedge/dmi.sock"),
        ("1.4", "1.4", "mqtt", "/etc/kubeedge/dmi.sock"),
        ("1.15", "1.4", "dmi", "/etc/kubeedge/dmi.sock"),
        ("1.17", "1.17", "dmi", "/etc/kubeedge/dmi.sock"),
        ("v1.23.1", "1.17", "dmi", "/etc/kubeedge"),
    ],
)
def test_the_release_decides_what_is_not_given(release, layout, transport, socket) -> None:
    args = args_of("--kubeedge-version", release) if release else args_of()
    assert (args.layout, args.transport, args.dmi_edgecore_socket) == (layout, transport, socket)


def test_an_explicit_option_wins_over_the_release() -> None:
    args = args_of("--kubeedge-version", "1.23", "--transport", "mqtt", "--layout", "1.4")
    assert (args.layout, args.transport) == ("1.4", "mqtt")


def test_not_a_release_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a KubeEdge version"):
        args_of("--kubeedge-version", "latest")
