"""Share of the beta-0.1 tilt's reward gain of one screened run, from the files in this folder.

    python3 docs/convergence/onnx-small/share.py NAME   # reads NAME.evalq.json, NAME.train.json, NAME.train.time

The tilt gain is that of std-beta0.1.eval.json (same beta, reward scale and tilt pool seed):
the pool's tilt mean minus its base mean.
"""
import json
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
name = sys.argv[1]
ev = json.load(open(os.path.join(here, name + '.evalq.json')))
hn = json.load(open(os.path.join(here, name + '.train.json')))  # the run's hypernet.json
base, r = ev['methods']['base']['reward'], ev['methods']['hypernoise']['reward']
gain = -4.661180901454022 - (-5.806357541048953)
res = hn['result']
t = open(os.path.join(here, name + '.train.time')).read()
wall = re.search(r'Elapsed.*: (\S+)', t).group(1)
rss = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)', t).group(1)) / 1024 / 1024
print('%s base %.4f hn %.4f share(fixed tilt gain %.4f) %.3f | steps %d batch %d train %.0fs wall %s rss %.2fGiB'
      % (name, base, r, gain, (r - base) / gain, res['steps'], hn['train']['batch_size'], res['seconds'], wall, rss))
