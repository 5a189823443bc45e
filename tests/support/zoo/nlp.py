"""Text models: an ERNIE-tiny-style encoder (word/position/type embeddings, attention mask from padding,
post-norm blocks, pooler) and an LSTM/GRU classifier."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import Attention


class ErnieLayer(nn.Layer):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, dim * 4), nn.Linear(dim * 4, dim)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, mask):
        x = self.norm1(x + self.dropout(self.attn(x, mask)))
        return self.norm2(x + self.dropout(self.fc2(F.gelu(self.fc1(x)))))


class ErnieTiny(nn.Layer):
    def __init__(self, vocab=50, dim=32, heads=4, layers=2, max_len=32, classes=3, pad_id=0):
        super().__init__()
        self.word = nn.Embedding(vocab, dim, padding_idx=pad_id)
        self.position = nn.Embedding(max_len, dim)
        self.token_type = nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.LayerList([ErnieLayer(dim, heads) for _ in range(layers)])
        self.pooler = nn.Linear(dim, dim)
        self.cls = nn.Linear(dim, classes)
        self.pad_id = pad_id

    def forward(self, input_ids):
        seq_len = input_ids.shape[1]
        positions = paddle.arange(seq_len, dtype="int64").unsqueeze(0)
        token_types = paddle.zeros_like(input_ids)
        x = self.norm(self.word(input_ids) + self.position(positions) + self.token_type(token_types))
        keep = (input_ids != self.pad_id).unsqueeze([1, 2])                       # [N, 1, 1, T]
        mask = paddle.where(keep, paddle.zeros(keep.shape, "float32"), paddle.full(keep.shape, -1e4, "float32"))
        for layer in self.layers:
            x = layer(x, mask)
        pooled = paddle.tanh(self.pooler(x[:, 0]))
        return F.softmax(self.cls(pooled), axis=-1), x


class RnnText(nn.Layer):
    def __init__(self, vocab=50, dim=16, hidden=16, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = nn.LSTM(dim, hidden, num_layers=2, direction="bidirect")
        self.gru = nn.GRU(hidden * 2, hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, input_ids):
        y, _ = self.lstm(self.emb(input_ids))
        z, h = self.gru(y)
        mask = (input_ids != 0).astype("float32").unsqueeze(-1)
        pooled = (z * mask).sum(axis=1) / paddle.clip(mask.sum(axis=1), min=1.0)
        return F.softmax(self.fc(pooled), axis=-1), h
