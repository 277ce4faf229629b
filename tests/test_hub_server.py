"""The local Hub stand-in (tests/hub_server.py) against the real clients: huggingface_hub, transformers and peft.

Each client runs in a subprocess, since huggingface_hub fixes its endpoint and offline mode when imported and this
test process is offline (conftest). The server runs here, so its state can be checked directly.
"""

import base64
import hashlib
import http.client
import json
import subprocess
import sys
import tempfile
import textwrap

import pytest
from hub_server import HubServer

TOKEN = "hf_hub_server_test_token"
REPO = "test-user/tiny"


@pytest.fixture
def hub():
    with HubServer(TOKEN) as server:
        yield server


def run_client(hub: HubServer, tmp_path, code: str, *, token: bool = True, **env) -> dict:
    """Run `code` in a fresh Python talking to `hub` (a fresh HF_HOME); return the JSON it prints last."""
    home = tempfile.mkdtemp(prefix="hf-home-", dir=tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**hub.client_env(home, token=token), **{k: str(v) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"client failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path):
    """A small folder to push: a text file, a nested adapter config and a safetensors file (it must go through LFS)."""
    import torch
    from safetensors.torch import save_file

    root = tmp_path / "to-push"
    (root / "adapter").mkdir(parents=True)
    (root / "notes.txt").write_text("a small text file\n")
    (root / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 4, "peft_type": "LORA"}))
    save_file({"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, root / "model.safetensors")
    return root


def files_of(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


PUSH = """
    import json, os
    from huggingface_hub import HfApi
    api = HfApi()
    url = api.create_repo(os.environ["REPO"], private=True)
    api.create_repo(os.environ["REPO"], exist_ok=True)
    commit = api.upload_folder(folder_path=os.environ["FOLDER"], repo_id=url.repo_id, commit_message="push")
    info = api.model_info(url.repo_id)
    print(json.dumps({
        "repo_id": url.repo_id, "oid": commit.oid, "user": api.whoami()["name"], "sha": info.sha,
        "private": info.private, "files": api.list_repo_files(url.repo_id),
    }))
"""


@pytest.mark.integration
def test_upload_folder_round_trips_through_snapshot_download(hub, tmp_path, folder):
    pushed = run_client(hub, tmp_path, PUSH, REPO=REPO, FOLDER=folder)
    assert pushed["repo_id"] == REPO and pushed["user"] == hub.user and pushed["private"] is True
    assert pushed["sha"] == pushed["oid"] == hub.repos[REPO].heads["main"]
    assert sorted(pushed["files"]) == sorted([".gitattributes", *files_of(folder)])

    repo = hub.repos[REPO]
    assert {path: repo["main"][path] for path in files_of(folder)} == files_of(folder)
    assert repo.commits[repo.heads["main"]].lfs == {"model.safetensors"}  # weights through LFS, the rest inline
    lfs_puts = [r for r in hub.requests if r.method == "PUT"]
    assert [r.path.rsplit("/", 1)[-1] for r in lfs_puts] == [
        hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    ]
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in hub.requests if "/commit/" in r.path)

    downloaded = run_client(
        hub, tmp_path,
        """
        import json, os, base64, pathlib
        from huggingface_hub import snapshot_download
        root = pathlib.Path(snapshot_download(os.environ["REPO"]))
        files = {
            p.relative_to(root).as_posix(): base64.b64encode(p.read_bytes()).decode()
            for p in root.rglob("*")
            if p.is_file()
        }
        print(json.dumps(files))
        """,
        REPO=REPO,
    )  # fmt: skip
    downloaded = {path: base64.b64decode(data) for path, data in downloaded.items()}
    assert downloaded.pop(".gitattributes").startswith(b"*.safetensors filter=lfs")
    assert downloaded == files_of(folder)


@pytest.mark.integration
def test_private_repo_is_not_found_without_the_token(hub, tmp_path, folder):
    run_client(hub, tmp_path, PUSH, REPO=REPO, FOLDER=folder)
    result = run_client(
        hub, tmp_path,
        """
        import json, os
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import RepositoryNotFoundError
        try:
            hf_hub_download(os.environ["REPO"], "notes.txt")
            print(json.dumps({"raised": None}))
        except RepositoryNotFoundError as e:
            print(json.dumps({"raised": type(e).__name__}))
        """,
        token=False, REPO=REPO,
    )  # fmt: skip
    assert result["raised"] == "RepositoryNotFoundError"


@pytest.mark.integration
def test_missing_file_and_missing_repo_raise_the_clients_errors(hub, tmp_path, folder):
    run_client(hub, tmp_path, PUSH, REPO=REPO, FOLDER=folder)
    result = run_client(
        hub, tmp_path,
        """
        import json, os
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
        raised = {}
        for name, call, error in [
            ("missing_file", lambda: hf_hub_download(os.environ["REPO"], "no-such-file.txt"), EntryNotFoundError),
            ("missing_repo", lambda: hf_hub_download("test-user/no-such-repo", "config.json"), RepositoryNotFoundError),
            ("missing_repo_snapshot", lambda: snapshot_download("test-user/no-such-repo"), RepositoryNotFoundError),
        ]:
            try:
                call()
                raised[name] = None
            except error as e:
                raised[name] = type(e).__name__
        print(json.dumps(raised))
        """,
        REPO=REPO,
    )  # fmt: skip
    assert result == {
        "missing_file": "RemoteEntryNotFoundError",  # a subclass of EntryNotFoundError
        "missing_repo": "RepositoryNotFoundError",
        "missing_repo_snapshot": "RepositoryNotFoundError",
    }
    codes = {r.path: (r.status, r.method) for r in hub.requests}
    assert codes[f"/{REPO}/resolve/main/no-such-file.txt"] == (404, "HEAD")


def test_create_repo_without_a_token_is_refused_with_401(hub, tmp_path):
    result = run_client(
        hub, tmp_path,
        """
        import json
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        try:
            HfApi().create_repo("test-user/anonymous")
            print(json.dumps({"status": None}))
        except HfHubHTTPError as e:
            print(json.dumps({"status": e.response.status_code}))
        """,
        token=False,
    )  # fmt: skip
    assert result == {"status": 401}
    assert hub.repos == {}
    assert hub.requests[-1].headers.get("Authorization") is None


@pytest.mark.integration
def test_a_failed_commit_raises_and_a_retry_succeeds(hub, tmp_path, folder):
    hub.fail_next_commit = 500
    result = run_client(
        hub, tmp_path,
        """
        import json, os
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        api = HfApi()
        api.create_repo(os.environ["REPO"])
        try:
            api.upload_folder(folder_path=os.environ["FOLDER"], repo_id=os.environ["REPO"], commit_message="first try")
            first = None
        except HfHubHTTPError as e:
            first = e.response.status_code
        commit = api.upload_folder(folder_path=os.environ["FOLDER"], repo_id=os.environ["REPO"], commit_message="retry")
        print(json.dumps({"first": first, "oid": commit.oid}))
        """,
        REPO=REPO, FOLDER=folder,
    )  # fmt: skip
    assert result["first"] == 500 and hub.fail_next_commit is None
    repo = hub.repos[REPO]
    assert repo.heads["main"] == result["oid"]
    assert [c.title for c in repo.commits.values()] == ["initial commit", "retry"]  # the failed commit left nothing
    assert [r.status for r in hub.requests if "/commit/" in r.path] == [500, 200]
    # the LFS object uploaded before the failure is reused
    assert len([r for r in hub.requests if r.method == "PUT"]) == 1
    assert {path: repo["main"][path] for path in files_of(folder)} == files_of(folder)


def test_raw_protocol_details(hub):
    """What the client never sends but a server must still handle: a chunked upload body, and an anonymous LFS batch."""
    data = b"x" * 5000
    oid = hashlib.sha256(data).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=10)
    connection.request("PUT", f"/lfs-upload/{oid}", body=iter([data[:1234], data[1234:]]), encode_chunked=True)
    response = connection.getresponse()
    response.read()
    assert response.status == 200 and hub.lfs_objects[oid] == data
    connection.request("POST", "/test-user/tiny.git/info/lfs/objects/batch", body=b"{}")  # same connection: kept alive
    response = connection.getresponse()
    assert response.status == 401 and "error" in json.loads(response.read())
    connection.close()


@pytest.mark.integration
def test_transformers_and_peft_load_what_was_pushed(hub, tmp_path):
    """A tiny BERT classifier and its tokenizer on main, a LoRA adapter on a branch: all load back from the server."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import load_file
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "was", "good", "bad"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    specials = {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    config = BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    lora = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["query", "value"], task_type="SEQ_CLS"))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_()  # lora_B starts at zero: make the adapter distinguishable from no adapter
    lora.save_pretrained(tmp_path / "adapter")
    expected_adapter = {k: v.clone() for k, v in get_peft_model_state_dict(lora).items()}

    run_client(
        hub, tmp_path,
        """
        import os
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("test-user/tiny-bert")
        api.upload_folder(folder_path=os.environ["MODEL"], repo_id="test-user/tiny-bert")
        api.create_repo("test-user/tiny-lora")
        api.create_branch("test-user/tiny-lora", branch="dev")
        api.upload_folder(folder_path=os.environ["ADAPTER"], repo_id="test-user/tiny-lora", revision="dev")
        print("{}")
        """,
        MODEL=tmp_path / "model", ADAPTER=tmp_path / "adapter",
    )  # fmt: skip
    lora_repo = hub.repos["test-user/tiny-lora"]
    assert "adapter_model.safetensors" in lora_repo["dev"] and list(lora_repo["main"]) == [".gitattributes"]

    out = tmp_path / "loaded"
    loaded = run_client(
        hub, tmp_path,
        """
        import json, os
        from peft import PeftModel, get_peft_model_state_dict
        from safetensors.torch import save_file
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        out = os.environ["OUT"]
        os.makedirs(out)
        model = AutoModelForSequenceClassification.from_pretrained("test-user/tiny-bert")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/model.safetensors")
        ids = AutoTokenizer.from_pretrained("test-user/tiny-bert")("the film was good")["input_ids"]
        peft_model = PeftModel.from_pretrained(model, "test-user/tiny-lora", revision="dev")
        state = {k: v.contiguous() for k, v in get_peft_model_state_dict(peft_model).items()}
        save_file(state, f"{out}/adapter.safetensors")
        print(json.dumps({"ids": ids}))
        """,
        OUT=out,
    )  # fmt: skip
    assert loaded["ids"] == tokenizer("the film was good")["input_ids"] == [5, 6, 7, 8]
    weights = load_file(out / "model.safetensors")
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    adapter = load_file(out / "adapter.safetensors")
    assert adapter.keys() == expected_adapter.keys()
    assert all(torch.equal(adapter[k], expected_adapter[k]) for k in expected_adapter)
