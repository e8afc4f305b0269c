import json,sys
d=json.load(open(sys.argv[1]))
print(d.keys())
for i,r in enumerate(d['reports']):
    t=r['tilt']
    print('report',i,'E_tilt %.4f base %.4f stages %s'%(t['reference_mean'],t['base_mean'],t.get('smc_stages')))
    for m,x in r['methods'].items():
        tm=t['methods'][m]
        print('   %-12s reward %.4f div %.3f tilt %s reno %s dist %s'%(m,x['reward'],x['diversity'],tm['tilt_gain_share'],tm['reno_gain_share'],tm['distance_to_tilt']))
s=d['train_seeds']
print(s['seeds'])
for m,f in s['methods'].items():
    print(m, {k:(round(v['Mean'] if 'Mean' in v else v['mean'],4), round(v['Std'] if 'Std' in v else v['std'],4)) for k,v in f.items()})
