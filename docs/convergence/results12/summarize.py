import json,sys,glob,os
for f in sorted(glob.glob(sys.argv[1]+'/*.eval.json')):
    d=json.load(open(f)); t=d['tilt']; h=d['methods']['hypernoise']; ref=t['reference']
    tr=f.replace('.eval.json','.train.json'); secs=''
    try:
        j=open(tr).read(); j=json.loads(j[j.index('{'):]); secs='%.0f'%j['result'].get('seconds',j['result'].get('train_seconds',0))
    except Exception as e: secs='?'
    print('%-28s share %.3f  FD-tilt %+.2f  div %.2f  dist %.2f  reward %.4f  train_s %s'%(os.path.basename(f)[:-10], t['methods']['hypernoise']['tilt_gain_share'], h['fd']-ref['fd'], h['diversity'], t['methods']['hypernoise']['distance_to_tilt'], h['reward'], secs))
