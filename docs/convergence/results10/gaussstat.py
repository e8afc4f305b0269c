"""Per prompt: |b_c|, the mean variance and the extreme eigenvalues of L_c L_c^T of gaussian
hypernetwork folders (usage: /usr/bin/python3 gaussstat.py DIR/hypernet.safetensors ...; numpy)."""
import json,struct,sys
import numpy as np
def load(p):
    b=open(p,'rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n]); out={}
    for k,v in h.items():
        if k=='__metadata__': continue
        s,e=v['data_offsets']; out[k]=np.frombuffer(b[8+n+s:8+n+e],dtype=np.float32).reshape(v['shape'])
    return out
for p in sys.argv[1:]:
    w=load(p); keys={k.split('/')[-1]:k for k in w}
    W=w[keys['matrix_t']]; s=w[keys['log_diag']]; sh=w[keys['shift']]*4
    P,D=sh.shape
    res=[]
    for c in range(P):
        A=W[c*D:(c+1)*D].T  # A[i,j] = W[c*D+j, i]
        L=np.tril(A,-1)+np.diag(np.exp(s[c]))
        cov=L@L.T
        ev=np.linalg.eigvalsh(cov)
        res.append((np.linalg.norm(sh[c]), cov.trace()/D, ev.min(), ev.max()))
    print(p.split('/')[-2]); 
    for c,r in enumerate(res): print('  prompt %d |b| %.3f meanvar %.3f eig [%.3f, %.3f]'%((c,)+r))
