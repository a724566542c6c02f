"""Face sources (photos, folders, video), scenario files and plots."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from device_sim import EMOTIONS, FaceRenderer, FleetStats, ScenarioError, load_scenario
from device_sim.camera import Mode
from device_sim.plots import write_plots
from device_sim.sources import SourceError, open_source


def _photo() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(np.asarray(data.astronaut()), cv2.COLOR_RGB2BGR)


def test_sample_photo_source_finds_her_face():
    shot = open_source("samples", 0).next_shot()
    assert len(shot.faces) >= 1
    assert shot.faces[0][1] is None  # unlabelled


def test_folder_source_labels_by_folder_name_and_loops(tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "misc").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "a.png"), _photo())
    cv2.imwrite(str(tmp_path / "misc" / "b.jpg"), _photo())
    source = open_source(f"folder:{tmp_path}", 0)
    labels = [source.next_shot().faces[0][1] for _ in range(4)]
    assert labels == [EMOTIONS.index("happy"), None, EMOTIONS.index("happy"), None]


def test_video_source_reads_frames_and_detects_faces(tmp_path):
    path = tmp_path / "clip.avi"
    frame = _photo()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, frame.shape[1::-1])
    for _ in range(3):
        writer.write(frame)
    writer.release()
    source = open_source(f"video:{path}", 0)
    shots = [source.next_shot() for _ in range(5)]  # loops past the third frame
    assert all(shot.faces for shot in shots)
    assert shots[0].gray.shape == frame.shape[:2]


@pytest.mark.parametrize("spec", ["webcam", "folder:/no/such/dir", "video:/no/such.avi", "folder:"])
def test_bad_sources_are_source_errors(spec):
    with pytest.raises(SourceError):
        open_source(spec, 0)


def test_scenario_file_expands_groups_with_ramp_up_and_faults(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "runtime_id": "node-a",
                "duration_s": 30,
                "groups": [
                    {
                        "name": "lobby",
                        "count": 4,
                        "fps": 5,
                        "ramp_up_s": 2,
                        "faults": {"malformed_rate": 0.1, "disconnect_every_s": 10},
                    },
                    {
                        "name": "door",
                        "count": 1,
                        "mode": "closed",
                        "in_flight": 8,
                        "username": "{name}",
                        "password": "pw",
                        "share_for_training": True,
                    },
                ],
            }
        )
    )
    scenario = load_scenario(path, {"broker": "mqtt://10.0.0.1:1883"})
    cameras = [config for config, _ in scenario.cameras()]
    assert [c.name for c in cameras] == ["lobby-00", "lobby-01", "lobby-02", "lobby-03", "door-00"]
    assert [c.start_delay_s for c in cameras[:4]] == [0.0, 0.5, 1.0, 1.5]
    assert cameras[1].malformed_rate == 0.1
    assert cameras[1].disconnect_every_s == 10
    assert cameras[4].mode is Mode.CLOSED
    assert cameras[4].in_flight == 8
    assert [c.share_for_training for c in cameras] == [False] * 4 + [True]  # consent per group
    assert (cameras[4].credentials.username, cameras[4].credentials.password) == ("door-00", "pw")
    assert {c.broker for c in cameras} == {"mqtt://10.0.0.1:1883"}
    assert len({c.seed for c in cameras}) == 5


@pytest.mark.parametrize(
    "body",
    [
        {"groups": [{"count": 0}]},
        {"groups": [{"mode": "sideways"}]},
        {"groups": [{"faults": {"malformed_rate": 2}}]},
        {"duration_s": -1},
        {"surprise": True},
    ],
)
def test_invalid_scenarios_name_the_field(tmp_path, body):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ScenarioError, match="invalid scenario"):
        load_scenario(path)


def test_plots_are_written(tmp_path):
    stats = FleetStats()
    renderer = FaceRenderer(0)
    for index in range(50):
        version = "1.0.0" if index < 25 else "1.1.0"
        stats.saw_version(version)
        stats.record(0.002 + index / 10_000, "OK", version, index % 2 == 0)
        renderer.render()
    paths = write_plots(stats, tmp_path, "run")
    assert [p.name for p in paths] == ["run-latency.png", "run-timeline.png", "run-accuracy.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert cv2.imread(str(path)).shape[0] > 200


async def test_closed_loop_camera_without_faces_neither_spins_nor_sends():
    import time

    from device_sim.camera import Camera, CameraConfig
    from device_sim.sources import Shot
    from edge_runtime import InputSpec, ModelRef, MqttTransport, Normalization, ServiceInfo

    class Blank:
        def next_shot(self) -> Shot:
            return Shot(np.zeros((64, 64), np.uint8), (), 0.0)

    stats = FleetStats()
    config = CameraConfig("blank", "mqtt://127.0.0.1:1", "rt", mode=Mode.CLOSED, in_flight=4)
    camera = Camera(config, stats, source=Blank())
    transport = MqttTransport("mqtt://127.0.0.1:1", client_id="never-connected")
    spec = InputSpec(64, 64, 1, Normalization.SYMMETRIC)
    info = ServiceInfo("rt", ModelRef("emotion", "1.0.0"), spec, (), 16, 8, 1 << 20, 512, "")
    await camera._closed_loop(transport, info, time.monotonic() + 0.3)
    assert stats.sent == 0
    assert 5 <= stats.frames_without_face <= 40  # about one frame per 10 ms, not millions
