"""Service specs: validation names the field, and what cannot run offline is refused with why."""

from __future__ import annotations

from pathlib import Path

import pytest
from meshagent.api.specs.service import ServiceSpec as RealServiceSpec

from localmesh.emulator.services.images import LocalRuntime, parse_mount_option, runtime_of
from localmesh.emulator.services.launch import (
    RoomContext,
    Unrunnable,
    check_runnable,
    plan_launch,
    rewrite_paths,
)
from localmesh.emulator.services.spec import SpecError, parse_spec


def spec(**fields):
    base = {"version": "v1", "kind": "Service", "metadata": {"name": "svc"},
            "container": {"image": "meshagent/cli:default", "command": "meshagent worker join"}}
    base.update(fields)
    return base


@pytest.mark.parametrize("body, message", [
    (spec(metadata={"name": "x", "nmae": "y"}), "metadata.nmae: unknown field"),
    (spec(ports=[{"num": 8078}]), "ports[0].num: port 8078 is reserved"),
    (spec(ports=[{"num": "any"}]), "ports[0].num: must be \"*\""),
    (spec(ports=[{"num": 0}]), "ports[0].num: 0 is not a port number"),
    (spec(kind="ServiceTemplate"), "kind: a ServiceTemplate must be rendered first"),
    (spec(version="v2"), "version:"),
    ({"version": "v1", "kind": "Service"}, "metadata: required field is missing"),
    (spec(container={"image": "meshagent/cli:default", "enviroment": []}),
     "container.enviroment: unknown field"),
    (spec(container={"image": "x", "environment": [{"name": "K", "secret": {"id": "s"}}]}),
     "run_as is required"),
    (spec(ports=[{"endpoints": [{"path": "/a", "meshagent": {}}]}]),
     "ports[0].endpoints[0].meshagent.identity: required field is missing"),
    ("just text", "a service spec is a map"),
])
def test_invalid_specs_name_the_field(body, message):
    with pytest.raises(SpecError) as error:
        parse_spec(body)
    assert message in str(error.value)


def test_valid_spec_round_trips_through_the_real_model():
    body = spec(ports=[{"num": "*", "endpoints": [{"path": "/agent", "meshagent": {"identity": "w"}}]}],
                agents=[{"name": "w", "annotations": {"meshagent.agent.type": "Worker"}}])
    normalized = parse_spec(body).to_json()
    assert normalized["enabled"] is True and normalized["container"]["template"] == "agent"
    # What we store and answer is what the real SDK's own model accepts.
    assert RealServiceSpec.model_validate(normalized).metadata.name == "svc"


@pytest.mark.parametrize("image, runtime", [
    ("meshagent/cli:default", "cli"),
    ("us-central1-docker.pkg.dev/meshagent-public/images/cli:{SERVER_VERSION}-esgz", "cli"),
    ("us-central1-docker.pkg.dev/meshagent-public/images/python-sdk:{SERVER_VERSION}-esgz", "python"),
    ("meshagent/python-sdk-slim:0.56.0", "python"),
    ("nginx:latest", None),
    ("example.com/team/cli:1", None),
])
def test_runtime_images(image, runtime):
    assert runtime_of(image) == runtime


@pytest.mark.parametrize("body, message", [
    (spec(container={"image": "ghcr.io/acme/agent:1", "command": "run"}),
     "container.image: 'ghcr.io/acme/agent:1' cannot be pulled offline"),
    (spec(container={"image": "meshagent/cli:default"}), "container.command: required locally"),
    (spec(container={"image": "meshagent/cli:default", "command": "x",
                     "storage": {"images": [{"image": "acme/code:1", "path": "/src"}]}}),
     "--mount-image acme/code:1=DIR"),
    (spec(container={"image": "meshagent/cli:default", "command": "x",
                     "storage": {"volumes": [{"name": "v", "path": "/v"}]}}),
     "container.storage.volumes: room volumes are not emulated"),
    (spec(container={"image": "meshagent/cli:default", "command": "x",
                     "environment": [{"name": "K", "secret": {"id": "s"}}], "run_as": {"email": "a@b"}}),
     "container.environment[0].secret: project secrets are not emulated"),
    (spec(ports=[{"num": "*"}, {"num": "*"}]), 'ports[1].num: only one port may be "*"'),
    (spec(container={"image": "meshagent/cli:default", "command": "x", "working_dir": "/app"}),
     "container.working_dir: '/app' is a folder inside the image"),
])
def test_unrunnable_specs_say_what_and_why(body, message):
    with pytest.raises(Unrunnable) as error:
        check_runnable(parse_spec(body), LocalRuntime())
    assert message in str(error.value)


def test_the_cli_image_needs_meshagent_beside_localmesh(tmp_path):
    with pytest.raises(Unrunnable, match="no `meshagent` is installed"):
        check_runnable(parse_spec(spec()), LocalRuntime(bin_dir=tmp_path))


def test_mount_option_matches_full_reference_repository_or_name(tmp_path):
    image = "us-central1-docker.pkg.dev/meshagent-public/images/python-docs-examples:{SERVER_VERSION}"
    for key in (image, image.rsplit(":", 1)[0], "python-docs-examples"):
        assert LocalRuntime(mount_images={key: tmp_path}).mounted_folder(image) == tmp_path
    assert LocalRuntime(mount_images={"other": tmp_path}).mounted_folder(image) is None
    assert parse_mount_option(f"x={tmp_path}") == ("x", tmp_path)
    with pytest.raises(ValueError, match="IMAGE=DIR"):
        parse_mount_option("no-folder")
    with pytest.raises(ValueError, match="is not a folder"):
        parse_mount_option(f"x={tmp_path / 'missing'}")


def test_mounted_paths_are_rewritten_as_whole_segments():
    table = [("/src", Path("/home/me/code"))]
    assert rewrite_paths("python /src/queueworker/main.py --in=/src", table) == \
        "python /home/me/code/queueworker/main.py --in=/home/me/code"
    assert rewrite_paths("python /srcx/a.py a/src/b", table) == "python /srcx/a.py a/src/b"


def test_launch_environment(tmp_path):
    body = spec(
        agents=[{"name": "poet"}],
        ports=[{"num": "*", "endpoints": [{"path": "/agent", "meshagent": {"identity": "poet"}}]}],
        container={"image": "meshagent/cli:default", "command": "meshagent worker service",
                   "environment": [{"name": "OPENAI_BASE_URL", "value": "http://mine/v1"},
                                   {"name": "MY_TOKEN", "token": {"identity": "helper", "role": "tool"}}]})
    minted = []

    def mint(identity, api, role):
        minted.append((identity, role))
        return f"jwt-{identity}"

    context = RoomContext(room="r", project_id="p", api_url="http://127.0.0.1:9", home=tmp_path)
    plan = plan_launch(parse_spec(body), LocalRuntime(), context, mint, {"PATH": "/usr/bin", "SECRET": "x"},
                       pick_port=lambda: 4242)
    env = plan.env
    assert plan.argv == ["/bin/sh", "-c", "meshagent worker service"]
    assert env["MESHAGENT_PORT"] == "4242" and env["MESHAGENT_HOST"] == "127.0.0.1"
    assert env["MESHAGENT_ROOM"] == "r" and env["MESHAGENT_PROJECT_ID"] == "p"
    assert env["MESHAGENT_API_URL"] == "http://127.0.0.1:9"
    assert env["MESHAGENT_ROOM_URL"] == "ws://127.0.0.1:9"
    assert env["OPENAI_BASE_URL"] == "http://mine/v1"  # the spec's environment wins
    assert env["MESHAGENT_TOKEN"] == env["OPENAI_API_KEY"] == "jwt-poet"
    assert env["MY_TOKEN"] == "jwt-helper" and ("helper", "tool") in minted
    assert env["HOME"] == str(tmp_path) and "SECRET" not in env
    assert env["PATH"].split(":")[0] == str(LocalRuntime().bin_dir)
    assert plan.ports[0].number == 4242 and plan.ports[0].endpoints == [("/agent", "poet", None)]


def test_template_none_adds_nothing(tmp_path):
    body = spec(container={"image": "meshagent/cli:default", "command": "x", "template": "none"})
    context = RoomContext(room="r", project_id="p", api_url="http://127.0.0.1:9", home=tmp_path)
    plan = plan_launch(parse_spec(body), LocalRuntime(), context, lambda *a: "t", {})
    assert "MESHAGENT_TOKEN" not in plan.env and "MESHAGENT_ROOM" not in plan.env
