"""#31 measurements (docs/fiftyone-native.md): the former hand-written
embedding loop vs FiftyOne's compute_embeddings (same network, weights and
transform), and the faiss neighbour graph (methods.neighbours) vs per-sample
queries of a brain similarity index. Minutes on 2 cores; not a test.

    mkdir -p /tmp/c10 && tar xzf ../shared/data/cifar10/cifar10_train_jpg.tar.gz \
        -C /tmp/c10 --wildcards 'train/airplane/*' 'train/cat/*'
    N=1000 .venv/bin/python scripts/measure_fiftyone_native.py

Uses a private MongoDB (tests/private_mongo.py) and this checkout as the
plugin (nested, as `fiftyone plugins download` installs it).
"""
import glob, os, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, REPO)
# the former loop: methods/embeddings.py before #31
old_dir = tempfile.mkdtemp()
with open(os.path.join(old_dir, "old_embeddings.py"), "w") as f:
    f.write(subprocess.run(["git", "-C", REPO, "show", "755e22f~1:methods/embeddings.py"],
                           capture_output=True, text=True, check=True).stdout)
sys.path.insert(0, old_dir)
import private_mongo
os.environ["FIFTYONE_PLUGINS_DIR"] = private_mongo.plugins_dir()
mongo = private_mongo.start()
import numpy as np, torch, torchvision
import fiftyone as fo, fiftyone.operators as foo
N = int(os.environ.get("N", 1000))
found = sorted(glob.glob(os.environ.get("IMAGES", "/tmp/c10/train/*/*.jpg")))
paths = found[:: max(1, len(found) // N)][:N]
N = len(paths)
ds = fo.Dataset()
ds.add_samples([fo.Sample(filepath=p) for p in paths])
torch.manual_seed(0)
state = os.path.join(old_dir, "resnet18_random.pth")
torch.save(torchvision.models.resnet18(weights=None).state_dict(), state)

import old_embeddings
t = time.perf_counter()
model, pre, dev = old_embeddings.load_backbone("resnet18", state)
old, failed = old_embeddings.embed_images(paths, model, pre, dev, 32)
t_old = time.perf_counter() - t

emb = sys.modules[type(foo.get_operator("@label-noise/curation/compute_embeddings")).__module__]
t = time.perf_counter()
fmodel, _ = emb.load_embeddings_model("resnet18", state)
new = np.stack(ds.compute_embeddings(fmodel, batch_size=32, progress=False))
t_new = time.perf_counter() - t
t = time.perf_counter()
new0 = np.stack(ds.compute_embeddings(fmodel, batch_size=32, num_workers=0, progress=False))
t_new0 = time.perf_counter() - t
print("embeddings of %d CIFAR jpgs (resnet18, batch 32, CPU, torch threads %d): former loop %.1f s, "
      "FiftyOne compute_embeddings %.1f s (default workers), %.1f s (num_workers=0); max |diff| %.2e"
      % (N, torch.get_num_threads(), t_old, t_new, t_new0, np.abs(old - new).max()))

# neighbours: the plugin's faiss graph vs a brain similarity index queried per sample
import fiftyone.brain as fob
from methods.neighbours import cosine_neighbours
x = np.random.default_rng(0).normal(size=(N, 256)).astype(np.float32)
ds.set_values("vec", list(x))
t = time.perf_counter(); nb = cosine_neighbours(x, 10); t_faiss = time.perf_counter() - t
t = time.perf_counter()
index = fob.compute_similarity(ds, embeddings="vec", backend="sklearn", brain_key="sim", progress=False)
t_index = time.perf_counter() - t
ids = ds.values("id")
Q = min(50, N)
t = time.perf_counter()
agree = 0
for i in range(Q):
    view = ds.sort_by_similarity(ids[i], k=11, brain_key="sim")
    got = [j for j in view.values("id") if j != ids[i]][:10]
    agree += len(set(got) & {ids[j] for j in nb[i]})
t_q = (time.perf_counter() - t) / Q
print("kNN graph of %d x 256 (k=10): faiss (methods.neighbours) %.3f s; brain sklearn index build %.2f s + "
      "%.3f s per sort_by_similarity query -> %.1f s for all %d rows (%.0fx)" % (
      N, t_faiss, t_index, t_q, t_index + t_q * N, N, (t_index + t_q * N) / max(t_faiss, 1e-9)))
print("same neighbours: %d of %d" % (agree, 10 * Q))
ds.delete()
mongo.stop()
