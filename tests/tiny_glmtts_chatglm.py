"""A text tokenizer in the official GLM-TTS layout (ChatGLM4's): `tokenizer.model` is a tiktoken BPE file (a base64
token and its rank per line), `tokenizer_config.json` names the remote-code class through `auto_map` and lists the
special tokens (`<|endoftext|>`, `<|user|>`, `<|begin_of_audio|>`, `<|audio_N|>`) in `added_tokens_decoder`, and
`tokenization_chatglm.py` holds the class. The class here is batchtts's own minimal stand-in with the same
interface (a slow `PreTrainedTokenizer` over a tiktoken `Encoding`), so the test exercises what transformers 5 does
with that layout (`AutoTokenizer.from_pretrained(..., trust_remote_code=True)`), not the official code itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|user|>", "<|begin_of_audio|>"]
N_AUDIO = 64
PATTERN = (  # GLM-4's pre-tokenizer split
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

REMOTE_CODE = """
import base64

import tiktoken
from transformers import PreTrainedTokenizer

PATTERN = __PATTERN__


class ChatGLM4Tokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, clean_up_tokenization_spaces=False, **kwargs):
        ranks = {}
        with open(vocab_file) as f:
            for line in f:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        self.vocab_file, self.ranks = vocab_file, ranks
        self.by_id = {rank: token for token, rank in ranks.items()}
        self.encoding = tiktoken.Encoding(name="tiny", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={})
        super().__init__(clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)

    @property
    def vocab_size(self):
        return len(self.by_id)

    def get_vocab(self):
        vocab = {self.by_id[i]: i for i in range(self.vocab_size)}
        vocab.update(self.added_tokens_encoder)
        return vocab

    def _tokenize(self, text, **kwargs):
        return [self.by_id[i] for i in self.encoding.encode(text)]

    def _convert_token_to_id(self, token):
        return self.ranks[token]

    def _convert_id_to_token(self, index):
        return self.by_id.get(index, "")

    def convert_tokens_to_string(self, tokens):
        out, pending = "", b""
        for t in tokens:
            if isinstance(t, bytes):
                pending += t
            else:
                out, pending = out + pending.decode("utf-8", "replace") + t, b""
        return out + pending.decode("utf-8", "replace")

    def save_vocabulary(self, save_directory, filename_prefix=None):
        return (self.vocab_file,)
""".replace("__PATTERN__", repr(PATTERN))


def build_chatglm_tokenizer(folder: Path, n_audio: int = N_AUDIO) -> dict[str, int]:
    """Write the layout into `folder`; returns the special tokens' ids (the byte-level BPE's 256 ranks first)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(256)]
    (folder / "tokenizer.model").write_text("\n".join(lines) + "\n")
    (folder / "tokenization_chatglm.py").write_text(REMOTE_CODE)
    names = SPECIALS + [f"<|audio_{k}|>" for k in range(n_audio)]
    ids = {name: 256 + i for i, name in enumerate(names)}
    added = {
        str(i): {
            "content": n,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for n, i in ids.items()
    }
    config = {
        "added_tokens_decoder": added,
        "additional_special_tokens": names[1:],
        "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLM4Tokenizer", None]},
        "clean_up_tokenization_spaces": False,
        "do_lower_case": False,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 1000000000000000019884624838656,
        "padding_side": "left",
        "remove_space": False,
        "tokenizer_class": "ChatGLM4Tokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return ids
