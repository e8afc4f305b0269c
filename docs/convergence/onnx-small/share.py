import json,sys
n=sys.argv[1]
d=json.load(open('/tmp/helper19/%s.evalq.json'%n))
h=json.load(open('/tmp/helper19/%s/hypernet.json'%n))
b=d['methods']['base']['reward']; r=d['methods']['hypernoise']['reward']
gain=-4.661180901454022-(-5.806357541048953)
res=h['result']
import re
t=open('/tmp/helper19/%s.train.time'%n).read()
wall=re.search(r'Elapsed.*: (\S+)',t).group(1); rss=int(re.search(r'Maximum resident set size \(kbytes\): (\d+)',t).group(1))/1024/1024
print('%s base %.4f hn %.4f share(fixed tilt gain %.4f) %.3f | steps %d batch %d train %.0fs wall %s rss %.2fGiB reg_last %.3g r_first %.3f r_last %.3f'%(n,b,r,gain,(r-b)/gain,res['steps'],h['train']['batch_size'],res['seconds'],wall,rss,res['reg_last_steps'],res['reward_first_steps'],res['reward_last_steps']))
