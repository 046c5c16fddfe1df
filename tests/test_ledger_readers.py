"""Reading the ledger never stops the recording of answers: with a user's read-only
DuckDB session open on the file, ``lcrag eval`` and the query API both record every
answer (no failure, no 503), reads see them at once, and the file holds them all
once the session closes."""

from __future__ import annotations

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from lcrag.app.cli.app import app
from lcrag.app.service.server import background_server
from lcrag.pipeline.index.live import LiveIndex
from lcrag.pipeline.ledger import Ledger
from lcrag.readers.fake import FakeReader
from tests.service_support import AUTH, build_index, make_app
from tests.test_evaluation import write_hotpot
from tests.test_ledger import hold


@pytest.mark.slow  # lcrag eval, an API server and a holder subprocess
def test_eval_and_the_api_record_beside_a_read_only_session(tmp_path, encoder):
    path = tmp_path / "ledger.duckdb"
    Ledger(path).migrate()
    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\nchunking:\n  target_tokens: 16\n")
    index = build_index(tmp_path / "api", encoder)
    holder = hold(path, read_only=True)
    try:
        result = CliRunner().invoke(app, [
            "eval", "--dataset", f"hotpotqa:{write_hotpot(tmp_path, n=3)}", "--strategies", "rag,lc", "--run-id", "held",
            "--config", str(config), "--ledger", str(path), "--work", str(tmp_path / "w")])
        assert result.exit_code == 0, result.output
        with (
            LiveIndex(index, lambda c: encoder) as live,
            background_server(make_app(live, FakeReader(), path, run_id="api-held")) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            codes = [client.post("/v1/query", json={"question": f"Where is Etna {i}?", "strategy": "rag"},
                                 headers=AUTH).status_code for i in range(4)]
        assert codes == [200] * 4
        seen = Ledger(path)
        assert seen.count("held") == 6 and seen.count("api-held") == 4  # reads see the waiting rows
        assert seen.segments("ledger")  # they wait beside the file, which the session holds
    finally:
        holder.kill()
        holder.wait()
    assert Ledger(path).compact() > 0
    with duckdb.connect(str(path), read_only=True) as conn:
        counts = dict(conn.execute("select run_id, count(*) from ledger group by 1").fetchall())
        ids = conn.execute("select count(distinct row_id) = count(*) from ledger").fetchone()[0]
    assert counts == {"held": 6, "api-held": 4} and ids
    assert Ledger(path).segments("ledger") == []
