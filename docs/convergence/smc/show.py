import json,sys
for f in sys.argv[1:]:
    d=json.load(open(f))
    t=d['tilt']
    print(f, {k:t.get(k) for k in ['beta','sampler','pool_per_prompt','ess_min','smc_stages','smc_accept','reference_mean','base_mean']})
    print('  ref reward %.4f div %s fd %s'%(t['reference']['reward'], t['reference'].get('diversity'), t['reference'].get('fd')))
    for m,r in d['methods'].items():
        tm=t['methods'][m]
        print('   %-12s reward %.4f div %.3f fd %s  tilt_share %s reno_share %s dist %s'%(m, r['reward'], r.get('diversity'), r.get('fd'), tm['tilt_gain_share'], tm['reno_gain_share'], tm['distance_to_tilt']))
